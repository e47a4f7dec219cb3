"""When contributions reach a hub, watched for benchmarks with next to no CPU of the hub's own."""

import time
from dataclasses import dataclass

import psycopg

from tests.support.harness import wait_for


@dataclass(frozen=True)
class Arrivals:
    """The first awaited contribution seen, how many were stored by then, and when the last one
    was (each ``time.monotonic``)."""

    first_at: float
    first_count: int
    done_at: float


def arrivals_after(
    database_url: str, what: str, mark: int, count: int, *, timeout: float, interval: float
) -> Arrivals:
    """Wait until ``count`` contributions with ids above ``mark`` are stored, noting when the first
    of them was seen (polled every 10 ms until then) and how many were stored at that moment.

    One open connection. Until the newest id is ``count`` above ``mark`` (ids are distinct, so the
    count cannot be reached before), a poll reads only the newest id, one index probe; only then
    does it count the rows above ``mark``: a ``count(*)`` over up to 20,000 rows every 100 ms was
    about 5 µs of each receiver's PostgreSQL per delivered entry in a throughput run. (Matching a
    list of uuids on a new connection, as ``wait_for_contributions`` does, cost about 12 CPU-seconds
    of the harness's own at 20,000 uuids every 100 ms.)"""
    with psycopg.connect(database_url, autocommit=True) as connection:

        def newest() -> int:
            query = "SELECT coalesce(max(id), 0) FROM federation_contribution"
            return connection.execute(query).fetchone()[0]

        def stored() -> int:
            query = "SELECT count(*) FROM federation_contribution WHERE id > %s"
            return connection.execute(query, (mark,)).fetchone()[0]

        wait_for(lambda: newest() > mark, timeout=timeout, interval=0.01, what=what)
        first_at, first_count = time.monotonic(), stored()
        wait_for(lambda: newest() - mark >= count, timeout=timeout, interval=interval, what=what)
        wait_for(lambda: stored() >= count, timeout=timeout, interval=interval, what=what)
    return Arrivals(first_at=first_at, first_count=first_count, done_at=time.monotonic())
