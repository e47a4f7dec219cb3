"""The export (docs/sync.md): the whole shared set as NDJSON, in one consistent snapshot, ending
with the stream cursor from which the delta API continues. On PostgreSQL, chunks of id ranges
are read by a few connections in the export's snapshot and rendered in Python; elsewhere (SQLite,
the demo) through the ORM.
"""

import contextlib
import itertools
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from typing import Any

import orjson
import psycopg
import psycopg.sql
from django.conf import settings
from django.db import connections, router, transaction

from federation.contributions.models import SHARED_STATES, SHARED_STATES_SQL, Entry
from federation.sync.cursors import cursor_for
from federation.sync.rendering import (
    ACTIVE,
    ENTRY_FIELDS,
    entry_summary,
    render_entries,
    utc_timestamp,
)
from federation.sync.stream import stream_state

# One export chunk: three plain range scans over the chunk's id range (low, high] (the visible
# entries, their label ids, their add contributions), rendered in Python (``_render_chunk``).
# Building the documents in SQL cost PostgreSQL about 11 µs an entry; this costs it much less, and
# the web process about 2 µs (docs/sync.md, "How fast").
_EXPORT_ENTRIES_SQL = (
    "SELECT id, signal_type, value, state, created_at, updated_at, state_changed_at "
    "FROM federation_entry WHERE id > %s AND id <= %s AND state IN " + SHARED_STATES_SQL + " "
    "ORDER BY id"
)
_EXPORT_LABELS_SQL = (
    "SELECT entry_id, label_id FROM federation_entrylabel WHERE entry_id > %s AND entry_id <= %s"
)
_EXPORT_ADDS_SQL = (
    "SELECT entry_id, organisation_id, origin_hub, status, quality, incident_id "
    "FROM federation_contribution WHERE entry_id > %s AND entry_id <= %s AND action = 'add'"
)


def shared_set_lines(*, chunk_size: int = 10_000) -> Iterator[bytes]:
    """The shared set as NDJSON (one upsert per entry members see, in id order), then an ``end``
    line with the cursor from which the delta API continues; yields one chunk of lines at a time.

    All of it is read in one REPEATABLE READ transaction on PostgreSQL, so it is one snapshot;
    entries are read ``chunk_size`` at a time by id (keyset), so memory stays bounded whatever the
    size of the set.

    The cursor is the last position sequenced *in that snapshot*. Every change at or below it is
    in the snapshot. A change committed but not yet sequenced when the snapshot was taken is in
    the snapshot too, yet gets a later position: delta sync sends that entry once more (an upsert
    or removal of what the reader already has, which is harmless), so there is overlap at most,
    never a gap.
    """
    alias = router.db_for_read(Entry)
    connection = connections[alias]
    connection.ensure_connection()
    nested = connection.in_atomic_block
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(using=alias):
        if postgresql and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        position = stream_state().last_position  # the snapshot's first read
        chunks = (
            _sql_chunks(connection, chunk_size, parallel=not nested)
            if postgresql
            else _orm_chunks(alias, chunk_size)
        )
        count = yield from chunks
        yield _line({"op": "end", "count": count, "cursor": cursor_for(position)})


def _orm_chunks(alias: str, chunk_size: int) -> Iterator[bytes]:
    """The export's chunks elsewhere (SQLite, the demo); returns how many entries."""
    count, last_id = 0, 0
    while True:
        entries = list(
            Entry.objects.using(alias)
            .filter(pk__gt=last_id, state__in=SHARED_STATES)
            .order_by("pk")
            .values_list("pk", *ENTRY_FIELDS)[:chunk_size]
        )
        if not entries:
            return count
        count += len(entries)
        last_id = entries[-1][0]
        yield b"\n".join(render_entries(entries)) + b"\n"


def _sql_chunks(connection, chunk_size: int, *, parallel: bool) -> Iterator[bytes]:
    """The export's chunks on PostgreSQL, in the current transaction's snapshot; returns how many
    entries.

    Each chunk (an id range of ``chunk_size``) is three range scans rendered in Python
    (``_render_chunk``). The chunks are read and rendered by ``settings.SYNC_EXPORT_READERS``
    threads at once, each with its own connection in this transaction's snapshot
    (``pg_export_snapshot``; ``SET TRANSACTION SNAPSHOT``), while this thread compresses and sends;
    they are yielded in id order, at most two chunks per reader ahead of the client. Inside a
    caller's transaction (``parallel`` false: a savepoint cannot export its snapshot, and other
    connections would not see its writes) the chunks are read one by one on this connection.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(max(id), 0) FROM federation_entry")
        (high,) = cursor.fetchone()
        ranges = [(low, min(low + chunk_size, high)) for low in range(0, high, chunk_size)]
        # Few rows (the taxonomy, the members), read once in the snapshot: the chunks carry ids.
        cursor.execute("SELECT id, slug FROM federation_label")
        label_slugs = dict(cursor.fetchall())
        cursor.execute("SELECT id, slug FROM members_organisation")
        member_slugs = dict(cursor.fetchall())
        if parallel:
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()

    def render(execute, bounds: tuple[int, int]) -> tuple[int, bytes]:
        return _render_chunk(execute, bounds, label_slugs, member_slugs)

    count = 0
    with contextlib.ExitStack() as stack:
        if parallel:
            readers = stack.enter_context(
                _SnapshotReaders(connection, snapshot, settings.SYNC_EXPORT_READERS)
            )
            chunks = readers.ordered(render, ranges)
        else:
            cursor = stack.enter_context(connection.cursor())

            def execute(sql: str, params: tuple) -> list[tuple]:
                cursor.execute(sql, params)
                return cursor.fetchall()

            chunks = (render(execute, bounds) for bounds in ranges)
        for chunk_count, text in chunks:
            if chunk_count:
                count += chunk_count
                yield text
    return count


def _render_chunk(execute, bounds, label_slugs: dict, member_slugs: dict) -> tuple[int, bytes]:
    """(entries, NDJSON lines) of the visible entries with ids in ``bounds`` (low, high]:
    ``execute(sql, params)`` returns a query's rows.

    The export's hot loop, about 2 µs an entry. It builds ``render_entries``'s documents (the
    tests compare them) in one loop of its own: going through ``_documents`` with a details map,
    as ``render_entries`` does, measured a quarter slower over HTTP. They are encoded by one
    ``orjson.dumps`` call for the whole chunk: one call per entry cost about 2 µs more, mostly in
    allocating each call's output. The array it
    returns becomes NDJSON by one replace, which is exact: every document starts with ``"op"``,
    the only key of that name, and a quote inside a JSON string is always escaped, so ``},{"op":``
    occurs only between two documents. Pieces entries share (a label set, a single contributor)
    are built once per chunk."""
    entries = execute(_EXPORT_ENTRIES_SQL, bounds)
    if not entries:
        return 0, b""
    labels: dict[int, list[int]] = defaultdict(list)
    for entry_id, label_id in execute(_EXPORT_LABELS_SQL, bounds):
        labels[entry_id].append(label_id)
    adds: dict[int, list[tuple]] = defaultdict(list)
    for row in execute(_EXPORT_ADDS_SQL, bounds):
        adds[row[0]].append(row)

    label_sets: dict[tuple, list[str]] = {}
    single_contributors: dict[tuple, list[dict]] = {}
    documents = []
    for entry_id, signal_type, value, state, created_at, updated_at, state_changed_at in entries:
        label_ids = labels.get(entry_id)
        if label_ids is None:
            slugs = []
        else:
            key = tuple(label_ids)
            slugs = label_sets.get(key)
            if slugs is None:
                slugs = label_sets[key] = sorted(label_slugs[i] for i in label_ids)
        contributions = adds.get(entry_id)
        if contributions is None:
            contributors, incidents, quality = [], [], None
        elif len(contributions) == 1:
            _, member_id, hub, status, quality, incident_id = contributions[0]
            if status == ACTIVE:
                key = (member_id, hub)
                contributors = single_contributors.get(key)
                if contributors is None:
                    contributors = single_contributors[key] = [
                        {"member": member_slugs[member_id], "hub": hub}
                    ]
            else:
                contributors, quality = [], None
            incidents = [] if incident_id is None else [str(incident_id)]
        else:
            _, contributors, incidents, quality = entry_summary(
                (), [(member_slugs[r[1]], r[2], r[3], r[4], r[5]) for r in contributions]
            )
        last_changed = max(updated_at, state_changed_at)
        documents.append(
            {
                "op": "upsert",
                "signal": {"type": signal_type, "value": value},
                "state": state,
                "labels": slugs,
                "contributors": contributors,
                "incidents": incidents,
                "quality": quality,
                # rendering's _stamp test, inline: no call per time in the hot loop
                "first_seen": created_at
                if created_at.microsecond and created_at.tzinfo is UTC
                else utc_timestamp(created_at),
                "last_changed": last_changed
                if last_changed.microsecond and last_changed.tzinfo is UTC
                else utc_timestamp(last_changed),
            }
        )
    text = orjson.dumps(documents, option=orjson.OPT_UTC_Z)
    return len(entries), text[1:-1].replace(b'},{"op":', b'}\n{"op":') + b"\n"


class _SnapshotReaders:
    """A few extra connections that read in one exported snapshot, queried in parallel."""

    def __init__(self, connection, snapshot: str, readers: int) -> None:
        # psycopg's own loaders (its C implementation), not Django's adapters context: Django's
        # timestamptz loader is a Python subclass, and parsing three times per entry with it took
        # a quarter of the export. The session is set to UTC below, so the times arrive in UTC.
        params = connection.get_connection_params()
        self._params = {k: v for k, v in params.items() if k not in ("context", "cursor_factory")}
        self._snapshot = snapshot
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._readers = max(1, readers)
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="export")

    def __enter__(self) -> "_SnapshotReaders":
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for reader in self._connections:
            reader.close()

    def ordered(self, render, ranges: list[tuple[int, int]]) -> Iterator[tuple]:
        """``render(execute, bounds)`` of each range, run by the readers, in the order of
        ``ranges``; ``execute(sql, params)`` runs a query on the reader's connection."""
        pending: deque[Future] = deque()
        upcoming = iter(ranges)
        for bounds in itertools.islice(upcoming, 2 * self._readers):
            pending.append(self._pool.submit(self._render, render, bounds))
        while pending:
            row = pending.popleft().result()
            for bounds in itertools.islice(upcoming, 1):
                pending.append(self._pool.submit(self._render, render, bounds))
            yield row

    def _render(self, render, bounds: tuple[int, int]) -> tuple:
        reader = getattr(self._local, "connection", None)
        if reader is None:
            reader = psycopg.connect(**{**self._params, "autocommit": True})
            with self._lock:
                self._connections.append(reader)
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            reader.execute(
                psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    psycopg.sql.Literal(self._snapshot)
                )
            )
            reader.execute("SET TIME ZONE 'UTC'")
            self._local.connection = reader

        def execute(sql: str, params: tuple) -> list[tuple]:
            return reader.execute(sql, params).fetchall()

        return render(execute, bounds)


def _line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)
