"""Pipelined bulk ingest works on SQLite, the embedded database of ``make demo``: the tests of
tests/federation/contributions/test_pipelined_ingest.py (a repeat and a conflict across chunks, a
bad signature in a later chunk, retracts after the adds of later chunks, a trusted member's
signal over two chunks, entries inserted as new until one exists) run again in a pytest of their own on settings/test_sqlite.py, where
upserts and bulk inserts take the ORM's road (federation/db/bulk_insert.py)."""

import pytest

from tests.support.on_sqlite import pytest_on_sqlite

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MODULE = "tests/federation/contributions/test_pipelined_ingest.py"


def test_the_pipelined_ingest_tests_pass_on_sqlite():
    output = pytest_on_sqlite(MODULE)
    # Everything ran but the two races, which need two writers at once (PostgreSQL).
    summary = output.strip().splitlines()[-1]
    assert "6 passed" in summary and "2 skipped" in summary and "failed" not in summary, summary
