# Concordat — see README.md. `make demo` and `make test` set up everything they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: install bytecode demo test bench lint format services browser clean ffmpeg-dev

# vpdq (requirements-dev.txt) builds from source against FFmpeg's development libraries.
FFMPEG_DEBS := libavcodec-dev libavformat-dev libavdevice-dev libavfilter-dev libswresample-dev \
	libswscale-dev libavutil-dev ffmpeg pkg-config
FFMPEG_LIBS := libavcodec libavformat libavdevice libavfilter libswresample libswscale libavutil

# As root with apt-get: installs the Debian packages that are missing. Otherwise: checks, and
# names exactly what is missing.
ffmpeg-dev:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; for deb in $(FFMPEG_DEBS); do \
			dpkg -s $$deb >/dev/null 2>&1 || missing="$$missing $$deb"; done; \
		if [ -n "$$missing" ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	@missing=""; command -v ffmpeg >/dev/null || missing=" ffmpeg"; \
	if command -v pkg-config >/dev/null; then \
		for lib in $(FFMPEG_LIBS); do pkg-config --exists $$lib || missing="$$missing $$lib-dev"; done; \
	else missing="$$missing pkg-config (and then the FFmpeg -dev libraries)"; fi; \
	if [ -n "$$missing" ]; then \
		echo "vpdq needs FFmpeg's development libraries; missing:$$missing."; \
		echo "As root: apt-get install $(FFMPEG_DEBS)"; exit 1; fi

$(STAMP): requirements.txt requirements-dev.txt | ffmpeg-dev
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Python 3.11 with venv is needed ($(PYTHON))."; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The project's modules compiled once, here: where the environment sets PYTHONDONTWRITEBYTECODE
# (these machines do), no process writes their bytecode, so every hub process a test or bench
# starts (web workers, Celery workers, the demo's hubs) compiled them all again at its start,
# about 0.45 s of CPU each on this machine. compileall writes it whatever that setting says, and
# it is read back whatever it says; a module edited since is compiled again (here or in memory).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 federation members settings client tests manage.py >/dev/null

services: $(STAMP)
	$(BIN)/python tests/ensure_services.py

browser:
	@$(PYTHON) tests/ensure_services.py --browser-only

test: $(STAMP) bytecode services browser lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

bench: $(STAMP) bytecode services
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python -m pytest -m bench -p no:xdist -s -q tests/bench

demo: $(STAMP) bytecode
	DJANGO_SETTINGS_MODULE=settings.demo $(BIN)/python manage.py demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles
