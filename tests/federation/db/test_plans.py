"""``bounded_query``: a read under the plan settings in one round trip (federation.db.plans)."""

import pytest
from django.db import connection

from federation.db.plans import bounded_query

SETTINGS = (
    "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather'),"
    " current_setting('enable_bitmapscan'), %s::int"
)


def _session_settings() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(SETTINGS, [0])
        return cursor.fetchone()[:3]


@pytest.mark.django_db(transaction=True)
def test_a_bounded_query_in_autocommit_reads_under_its_settings_in_one_round_trip(
    django_assert_num_queries,
):
    before = _session_settings()

    with django_assert_num_queries(1):
        rows = bounded_query(SETTINGS, [7], using="default", plain_index_scans=True)

    assert rows == [("off", "0", "off", 7)]
    assert _session_settings() == before


@pytest.mark.django_db
def test_a_bounded_query_puts_back_the_settings_of_the_callers_transaction():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('jit', 'on', true),"
            " set_config('max_parallel_workers_per_gather', '3', true)"
        )
    before = _session_settings()

    rows = bounded_query(SETTINGS, [1], using="default")

    assert rows == [("off", "0", before[2], 1)]
    assert _session_settings() == before == ("on", "3", before[2])
