"""Planner settings for the hot, bounded statements whose plan must not depend on statistics.

A table PostgreSQL has never analysed (autovacuum off, or just after a bulk load) is planned from
guesses, and for the change stream's statements the guesses cost more than the work: the delta
page was JIT-compiled on every call (about 0.9 s, for a page read in milliseconds); the match
index's "changed since" read became a parallel sequential scan of the change table (about 70 ms
at 200,000 rows); the sequencer's read of the unsequenced rows became a bitmap scan, which reads
every entry its partial index still holds for rows sequenced long ago (dead until a vacuum: 50 to
90 ms at 200,000 rows, on every nudge) where a plain index scan marks them dead as it passes and
the next one skips them (about 1 ms). Measured in docs/sync.md, "How fast".

Each of these statements reads at most a page of rows through an index, so none can gain from
JIT or parallel workers, whatever the estimates: ``bounded_plan`` turns them off for the
statements it wraps only (``set_config(…, true)``, like ``SET LOCAL``, in a transaction of their
own). Other databases (SQLite, for the demo) have no such settings: nothing is done.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

_BOUNDED = {"jit": "off", "max_parallel_workers_per_gather": "0"}
_PLAIN_INDEX_SCANS = {"enable_bitmapscan": "off"}


@contextmanager
def bounded_plan(*, using: str, plain_index_scans: bool = False) -> Iterator[None]:
    """Run the statements inside in a transaction (a savepoint inside the caller's) without JIT
    and without parallel workers; with ``plain_index_scans``, without bitmap scans either (for a
    read of a partial index that holds the entries of dead rows, so that the scan marks them dead
    for the next one). Inside a caller's transaction the settings are put back on the way out, so
    they never reach the caller's other statements."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    wanted = {**_BOUNDED, **(_PLAIN_INDEX_SCANS if plain_index_scans else {})}
    nested = connection.in_atomic_block
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            # The select list is evaluated in order: each value is read before it is set.
            cursor.execute(
                "SELECT "
                + ", ".join("current_setting(%s), set_config(%s, %s, true)" for _ in wanted),
                [part for name, value in wanted.items() for part in (name, name, value)],
            )
            previous = cursor.fetchone()[0::2]
        yield
        if nested:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in wanted),
                    [
                        part
                        for name, old in zip(wanted, previous, strict=True)
                        for part in (name, old)
                    ],
                )
