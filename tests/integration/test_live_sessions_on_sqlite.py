"""Live sessions work on SQLite, the embedded database of ``make demo``: the live session tests
(tests/video/test_live_sessions.py: a derived copy alerts, an unrelated stream never does, GET,
DELETE, idle expiry and the beat sweep, bounds, audit, two calls at once) run again in a pytest
of their own on settings/test_sqlite.py, where the frames path is the ORM's
(federation.live.portable_state) rather than PostgreSQL's SQL."""

import pytest

from tests.support.on_sqlite import pytest_on_sqlite

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MODULE = "tests/video/test_live_sessions.py"


def test_the_live_session_tests_pass_on_sqlite():
    output = pytest_on_sqlite(MODULE)
    # Everything ran but the one test of PostgreSQL's statement count.
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "1 skipped" in summary and "failed" not in summary, summary
    assert "counts the statements of PostgreSQL's SQL" in output
