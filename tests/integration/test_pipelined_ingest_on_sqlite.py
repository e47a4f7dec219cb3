"""Pipelined bulk ingest works on SQLite, the embedded database of ``make demo``: the tests of
tests/federation/contributions/test_pipelined_ingest.py (a repeat and a conflict across chunks, a
bad signature in a later chunk, retracts after the adds of later chunks, a trusted member's
signal over two chunks) run again in a pytest of their own on settings/test_sqlite.py, where
upserts and bulk inserts take the ORM's road (federation/db/bulk_insert.py)."""

import os
import subprocess
import sys

import pytest

from tests.support.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MODULE = "tests/federation/contributions/test_pipelined_ingest.py"


def test_the_pipelined_ingest_tests_pass_on_sqlite():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test_sqlite"}
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "--ds", "settings.test_sqlite", "-rs", MODULE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # Everything ran but the two races, which need two writers at once (PostgreSQL).
    summary = run.stdout.strip().splitlines()[-1]
    assert "4 passed" in summary and "2 skipped" in summary and "failed" not in summary, summary
