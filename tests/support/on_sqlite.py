"""Running a test module again on SQLite, the embedded database of ``make demo``, in a pytest of
its own (settings/test_sqlite.py): for the tests that show a PostgreSQL fast path has a portable
twin that behaves the same."""

import os
import subprocess
import sys

from tests.support.harness import ROOT


def pytest_on_sqlite(module: str) -> str:
    """Run ``module``'s tests on SQLite; fail unless they all pass or skip. Returns pytest's
    output (with the reasons for skips) for the caller to check what was skipped."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test_sqlite"}
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "--ds", "settings.test_sqlite", "-rs", module],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    return run.stdout
