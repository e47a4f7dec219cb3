"""The references without a PostgreSQL foreign key are still enforced on SQLite, the embedded
database of ``make demo``, which keeps its real foreign keys (federation/migrations/
0032_set_based_references.py): the tests of tests/federation/db/test_set_based_references.py run
again in a pytest of their own on settings/test_sqlite.py. A later migration that rebuilt one of
these tables on SQLite without its foreign keys would let an orphan through here."""

import pytest

from tests.support.on_sqlite import pytest_on_sqlite

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MODULE = "tests/federation/db/test_set_based_references.py"


def test_the_reference_tests_pass_on_sqlite():
    output = pytest_on_sqlite(MODULE)
    # The foreign keys, the orphans, the update and the deletes run; the triggers (and their
    # plans), TRUNCATE, isolation and the races are PostgreSQL's.
    summary = output.strip().splitlines()[-1]
    assert "5 passed" in summary and "10 skipped" in summary and "failed" not in summary, summary
