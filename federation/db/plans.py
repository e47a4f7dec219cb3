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

``bounded_query`` does the same for one read in **one round trip**: the settings, the statement
and the settings put back travel as one query string, which PostgreSQL runs statement by
statement (each planned after the one before has run, so the read is planned without JIT), in
one implicit transaction when the connection is in autocommit. ``bounded_plan`` costs four or
five round trips (``BEGIN`` or a savepoint, the settings, the statements, settings put back,
``COMMIT``): most of a single-signal match request's time.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

try:
    from psycopg import ClientCursor
except ImportError:  # psycopg2: one query string answers only its last statement
    ClientCursor = None

_BOUNDED = {"jit": "off", "max_parallel_workers_per_gather": "0"}
_PLAIN_INDEX_SCANS = {"enable_bitmapscan": "off"}
_BY_INDEX = {"enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off"}


@contextmanager
def bounded_plan(
    *, using: str, plain_index_scans: bool = False, by_index: bool = False
) -> Iterator[None]:
    """Run the statements inside in a transaction (a savepoint inside the caller's) without JIT
    and without parallel workers; with ``plain_index_scans``, without bitmap scans either (for a
    read of a partial index that holds the entries of dead rows, so that the scan marks them dead
    for the next one); with ``by_index``, without sequential scans, hash joins or merge joins
    (for a keyset page and lookups per row: with the statistics of a tiny table PostgreSQL
    hashed a whole table against another instead). Inside a caller's transaction the settings
    are put back on the way out, so they never reach the caller's other statements."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    wanted = {
        **_BOUNDED,
        **(_PLAIN_INDEX_SCANS if plain_index_scans else {}),
        **(_BY_INDEX if by_index else {}),
    }
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


# A setting's value before ``bounded_query`` set it, kept in a custom setting of the transaction
_SAVED = "concordat.saved_{}"


def bounded_query(sql: str, params: list, *, using: str, plain_index_scans: bool = False) -> list:
    """The rows of one read (``sql`` with ``params``, a single statement; it may also write, in
    a data-modifying CTE) run as
    ``bounded_plan`` runs it, in one round trip to PostgreSQL: one query string sets the settings
    locally, saving each one's value first, runs the read, and puts the values back (so inside
    a caller's transaction they never reach its other statements, as with ``bounded_plan``).
    Needs parameters bound on the client (Django's default with psycopg 3; the string is then
    sent with the simple query protocol, which allows several statements); otherwise, and on
    other databases, the read runs under ``bounded_plan``."""
    connection = connections[using]
    connection.ensure_connection()
    factory = getattr(connection.connection, "cursor_factory", None)
    if (
        connection.vendor != "postgresql"
        or ClientCursor is None
        or not (isinstance(factory, type) and issubclass(factory, ClientCursor))
    ):
        with (
            bounded_plan(using=using, plain_index_scans=plain_index_scans),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()
    wanted = {**_BOUNDED, **(_PLAIN_INDEX_SCANS if plain_index_scans else {})}
    # Names and values are this module's constants, not input: written into the string, so that
    # the caller's parameters are the only ones.
    save = ", ".join(
        f"set_config('{_SAVED.format(name)}', current_setting('{name}'), true),"
        f" set_config('{name}', '{value}', true)"
        for name, value in wanted.items()
    )
    restore = ", ".join(
        f"set_config('{name}', current_setting('{_SAVED.format(name)}'), true)" for name in wanted
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {save}; {sql.strip().rstrip(';')}; SELECT {restore}", params)
        cursor.nextset()
        return cursor.fetchall()
