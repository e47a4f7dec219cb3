# Concordat — see README.md. `make demo` and `make test` set up everything they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: install demo test bench lint format services browser clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Python 3.11 with venv is needed ($(PYTHON))."; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

services: $(STAMP)
	$(BIN)/python tests/ensure_services.py

browser:
	@$(PYTHON) tests/ensure_services.py --browser-only

test: $(STAMP) services browser lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

bench: $(STAMP) services
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python -m pytest -m bench -p no:xdist -s -q tests/bench

demo: $(STAMP)
	DJANGO_SETTINGS_MODULE=settings.demo $(BIN)/python manage.py demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles
