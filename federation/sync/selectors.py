"""Reading the shared set for members: pages of the change stream after a position, and a
consistent snapshot of the whole set for the export (docs/sync.md).

Both render an entry the same way, as it stands when read, with a fixed number of queries per
page or chunk: the rows themselves, their labels, their add contributions.
"""

import contextlib
import itertools
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
import psycopg
import psycopg.sql
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, Q

from federation.contributions.models import (
    SHARED_STATES,
    SHARED_STATES_SQL,
    Contribution,
    Entry,
    EntryLabel,
)
from federation.errors import Gone
from federation.sync.cursors import cursor_for
from federation.sync.models import EntryChange, SyncState

EXPORT_PATH = "/api/v1/sync/export"

# The entry columns every rendering reads, in this order.
_ENTRY_FIELDS = ("signal_type", "value", "state", "created_at", "updated_at", "state_changed_at")


@dataclass(frozen=True)
class ChangesPage:
    items: list[bytes]  # each change as a JSON document, oldest first
    position: int
    more: bool
    horizon: int = 0  # the reader's compaction horizon, for the next cursor (``cursors.py``)


@dataclass(frozen=True)
class StreamState:
    last_position: int
    compacted_through: int


def stream_state() -> StreamState:
    row = SyncState.objects.filter(pk=1).values_list("last_position", "compacted_through").first()
    return StreamState(*(row or (0, 0)))


def changes_after(
    *,
    after: int | None,
    limit: int,
    horizon: int = 0,
    signal_type: str | None = None,
    label: str | None = None,
    incident: str | None = None,
) -> ChangesPage:
    """Up to ``limit`` changes after position ``after`` (``None``: from the start of the stream),
    oldest first, each entry once (its last change in the page), rendered as it stands now.

    Raises ``Gone`` (410 ``stale_cursor``) when compaction removed a removal the reader may have
    needed: one above both ``after`` and the reader's ``horizon`` (the compaction horizon when
    they started from the start, which the page carries on for the next cursor). The reader must
    start again from the export.
    """
    start = after or 0
    # Read before the page: every position up to here was committed before the page's query
    # started, so the query sees all of them and the next cursor may skip to here; and every
    # removal compaction had dropped up to ``compacted_through`` is gone from what the query sees.
    state = stream_state()
    if after is None:
        horizon = state.compacted_through
    if start >= state.last_position:
        # Nothing after the reader (the follower's and a current reader's usual poll): no page
        # query. Not stale either: the horizon read with this position is not above it.
        return ChangesPage(items=[], position=start, more=False, horizon=horizon)
    if connections[router.db_for_read(EntryChange)].vendor == "postgresql":
        rows = _sql_changes(start, limit + 1, signal_type, label, incident)
    else:
        rows = _portable_changes(start, limit + 1, signal_type, label, incident)
    more = len(rows) > limit
    rows = rows[:limit]
    # Checked after the page was read: a compaction that committed before the read raised the
    # horizon before this check, so a reader can never be handed a page with a hole in it.
    if after is not None and stream_state().compacted_through > max(after, horizon):
        raise Gone(
            "This cursor is older than the stream's retention of removals; start again from the "
            "export.",
            code="stale_cursor",
            details={"export": EXPORT_PATH},
        )
    position = rows[-1][0] if rows else start
    if not more:
        position = max(position, state.last_position)
    last_index = {row[1]: index for index, row in enumerate(rows)}
    items = [row[2] for index, row in enumerate(rows) if last_index[row[1]] == index]
    return ChangesPage(items=items, position=position, more=more, horizon=horizon)


# --- Rendering on PostgreSQL: the documents are built by the database ---------------------------
#
# One statement per page: the page's rows (a CTE), then each entry's labels and add contributions
# by index lookups (LATERAL), whose cost is linear in the page whatever the planner's
# estimates. Python only joins the ready JSON texts.

_TIME = """to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_DOCUMENT_SQL = """
WITH page AS MATERIALIZED ({page})
SELECT e.sort_key, e.id,
    CASE WHEN e.state IN {shared} THEN {upsert} ELSE json_build_object(
        'op', 'remove',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'reason', e.state,
        'last_changed', {last_changed}
    ) END::text
FROM page AS e
LEFT JOIN LATERAL (
    SELECT json_agg(l.slug ORDER BY l.slug COLLATE "C") AS slugs
    FROM federation_entrylabel el JOIN federation_label l ON l.id = el.label_id
    WHERE el.entry_id = e.id
) AS labels ON true
LEFT JOIN LATERAL (
    SELECT {adds}
    FROM federation_contribution c JOIN members_organisation o ON o.id = c.organisation_id
    WHERE c.entry_id = e.id AND c.action = 'add'
) AS adds ON true
ORDER BY e.sort_key
"""
# An upsert document, from ``e`` (the entry), ``labels.slugs`` and ``adds`` (its aggregates).
# Its keys come in the order of ``_documents`` and the export's (json, not jsonb, which would
# sort them): the contributors are gathered as distinct [hub, member] pairs, then written as
# {"member", "hub"} objects by hub, then member, in code point order, as Python sorts them.
_UPSERT_SQL = """json_build_object(
        'op', 'upsert',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'state', e.state,
        'labels', COALESCE(labels.slugs, '[]'::json),
        'contributors', COALESCE((
            SELECT json_agg(json_build_object('member', p->>1, 'hub', p->>0)
                            ORDER BY (p->>0) COLLATE "C", (p->>1) COLLATE "C")
            FROM jsonb_array_elements(adds.contributors) AS p
        ), '[]'::json),
        'incidents', COALESCE(to_json(adds.incidents), '[]'::json),
        'quality', adds.quality,
        'first_seen', {first_seen},
        'last_changed', {last_changed}
    )"""
_ADDS_AGGREGATES = """jsonb_agg(DISTINCT jsonb_build_array(c.origin_hub, o.slug))
               FILTER (WHERE c.status = 'active') AS contributors,
           max(c.quality) FILTER (WHERE c.status = 'active') AS quality,
           array_agg(DISTINCT c.incident_id::text) FILTER (WHERE c.incident_id IS NOT NULL)
               AS incidents"""
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
# What a page query selects (``e`` being federation_entry), after its sort key.
_PAGE_COLUMNS = (
    "e.id, e.signal_type, e.value, e.state, e.created_at, e.updated_at, e.state_changed_at"
)
_UPSERT_SQL = _UPSERT_SQL.replace("{first_seen}", _TIME.format("e.created_at"))
_UPSERT_SQL = _UPSERT_SQL.replace(
    "{last_changed}", _TIME.format("GREATEST(e.updated_at, e.state_changed_at)")
)
_DOCUMENT_SQL = (
    _DOCUMENT_SQL.replace("{upsert}", _UPSERT_SQL)
    .replace("{shared}", SHARED_STATES_SQL)
    .replace("{adds}", _ADDS_AGGREGATES)
    .replace("{last_changed}", _TIME.format("GREATEST(e.updated_at, e.state_changed_at)"))
)


# The page statement's settings, for its transaction only. Its cost estimate is far above the
# JIT thresholds whenever the tables have no statistics (autovacuum off, or just after a bulk
# load: the LATERAL aggregates are then guessed at hundreds of rows each), and PostgreSQL then
# spent about 0.9 s compiling it on every call, even for an empty page. The statement is a
# keyset scan of at most one page plus index lookups per row, so neither JIT nor parallel
# workers (which cost more to start than the page takes to read) can pay off; with both off it
# runs the same plan, in milliseconds, with statistics or without (docs/sync.md, "How fast").
_PAGE_SETTINGS_SQL = (
    "SELECT set_config('jit', 'off', true), "
    "set_config('max_parallel_workers_per_gather', '0', true)"
)


def _sql_documents(page_sql: str, params: list) -> list[tuple[int, int, bytes]]:
    alias = router.db_for_read(EntryChange)
    connection = connections[alias]
    # SET LOCAL needs a transaction; inside a caller's, the settings last until it ends.
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(_PAGE_SETTINGS_SQL)
        cursor.execute(_DOCUMENT_SQL.replace("{page}", page_sql), params)
        return [(key, pk, document.encode()) for key, pk, document in cursor.fetchall()]


def _sql_changes(start, limit, signal_type, label, incident) -> list[tuple[int, int, bytes]]:
    where, params = ["c.position > %s"], [start]
    if signal_type:
        where.append("e.signal_type = %s")
        params.append(signal_type)
    # Labels and incidents only accumulate on an entry (docs/sync.md), so a filtered copy needs
    # no removal for "no longer matches"; removals always pass the filter.
    if label:
        where.append(
            f"(e.state NOT IN {SHARED_STATES_SQL} OR EXISTS (SELECT 1 FROM federation_entrylabel el "  # noqa: S608 (a constant)
            "JOIN federation_label l ON l.id = el.label_id WHERE el.entry_id = e.id AND l.slug = %s))"
        )
        params.append(label)
    if incident:
        where.append(
            f"(e.state NOT IN {SHARED_STATES_SQL} OR EXISTS (SELECT 1 FROM federation_contribution ic "  # noqa: S608 (a constant)
            "WHERE ic.entry_id = e.id AND ic.action = 'add' AND ic.incident_id = %s))"
        )
        params.append(incident)
    conditions = " AND ".join(where)  # fixed clauses; every value is a parameter
    page = (
        f"SELECT c.position AS sort_key, {_PAGE_COLUMNS} FROM federation_entrychange c "  # noqa: S608
        f"JOIN federation_entry e ON e.id = c.entry_id WHERE {conditions} "
        "ORDER BY c.position LIMIT %s"
    )
    return _sql_documents(page, [*params, limit])


# --- Rendering elsewhere (SQLite, for the demo): the same documents from the ORM ----------------


def _portable_changes(start, limit, signal_type, label, incident) -> list[tuple[int, int, bytes]]:
    changes = EntryChange.objects.filter(position__gt=start)
    if signal_type:
        changes = changes.filter(entry__signal_type=signal_type)
    gone = ~Q(entry__state__in=SHARED_STATES)
    if label:
        labelled = EntryLabel.objects.filter(entry_id=OuterRef("entry_id"), label__slug=label)
        changes = changes.filter(gone | Q(Exists(labelled)))
    if incident:
        tagged = Contribution.objects.filter(
            entry_id=OuterRef("entry_id"), action=Contribution.Action.ADD, incident_id=incident
        )
        changes = changes.filter(gone | Q(Exists(tagged)))
    rows = list(
        changes.order_by("position").values_list(
            "position", "entry_id", *(f"entry__{name}" for name in _ENTRY_FIELDS)
        )[:limit]
    )
    documents = render_entries([row[1:] for row in rows])
    return [(row[0], row[1], doc) for row, doc in zip(rows, documents, strict=True)]


def _timestamp(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp(moment):
    """``moment`` for orjson (``OPT_UTC_Z``), which writes a UTC time as the documented
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` itself, fast, unless its fraction is zero (it would leave the
    fraction out) or it is in another zone: those are formatted here."""
    if moment.microsecond and moment.tzinfo is UTC:
        return moment
    return _timestamp(moment)


def render_entries(rows: list[tuple]) -> list[bytes]:
    """JSON documents for ``(entry_id, *_ENTRY_FIELDS)`` rows: an upsert for an entry members
    see, a removal otherwise (the portable twin of ``_DOCUMENT_SQL``)."""
    details = _details([row[0] for row in rows if row[3] in SHARED_STATES])
    return [orjson.dumps(item, option=orjson.OPT_UTC_Z) for item in _documents(rows, details)]


def _documents(rows: list[tuple], details: dict[int, tuple]) -> Iterator[dict]:
    for entry_id, signal_type, value, state, created_at, updated_at, state_changed_at in rows:
        signal = {"type": signal_type, "value": value}
        last_changed = _stamp(max(updated_at, state_changed_at))
        if state not in SHARED_STATES:
            yield {"op": "remove", "signal": signal, "reason": state, "last_changed": last_changed}
            continue
        labels, contributors, incidents, quality = details.get(entry_id, _NO_DETAILS)
        yield {
            "op": "upsert",
            "signal": signal,
            "state": state,
            "labels": labels,
            "contributors": contributors,
            "incidents": incidents,
            "quality": quality,
            "first_seen": _stamp(created_at),
            "last_changed": last_changed,
        }


_NO_DETAILS = ([], [], [], None)


def _details(entry_ids: list[int]) -> dict[int, tuple]:
    if not entry_ids:
        return {}
    labels: dict[int, list[str]] = defaultdict(list)
    for entry_id, slug in (
        EntryLabel.objects.filter(entry_id__in=entry_ids)
        .order_by()
        .values_list("entry_id", "label__slug")
    ):
        labels[entry_id].append(slug)
    adds: dict[int, list[tuple]] = defaultdict(list)
    for entry_id, *add in (
        Contribution.objects.filter(entry_id__in=entry_ids, action=Contribution.Action.ADD)
        .order_by()
        .values_list(
            "entry_id", "organisation__slug", "origin_hub", "status", "quality", "incident"
        )
    ):
        adds[entry_id].append(add)
    return {
        entry_id: _summary(labels.get(entry_id, ()), adds.get(entry_id, ()))
        for entry_id in entry_ids
    }


def _summary(labels, adds) -> tuple:
    """(labels, contributors, incidents, quality) of an entry from its label slugs and its add
    contributions as ``(member, hub, status, quality, incident_id)``: labels sorted; the active
    contributors once each, by hub then member (code point order, as ``_UPSERT_SQL`` sorts
    them); every incident, sorted; the best quality of an active one."""
    contributors: set[tuple[str, str]] = set()
    incidents: set[str] = set()
    quality = None
    for member, hub, status, value, incident_id in adds:
        if incident_id is not None:
            incidents.add(str(incident_id))
        if status != _ACTIVE:
            continue
        contributors.add((hub, member))
        if value is not None and (quality is None or value > quality):
            quality = value
    return (
        sorted(labels),
        [{"member": member, "hub": hub} for hub, member in sorted(contributors)],
        sorted(incidents),
        quality,
    )


_ACTIVE = Contribution.Status.ACTIVE.value


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
            .values_list("pk", *_ENTRY_FIELDS)[:chunk_size]
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
            if status == _ACTIVE:
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
            _, contributors, incidents, quality = _summary(
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
                # _stamp's test, inline: no call per time in the hot loop
                "first_seen": created_at
                if created_at.microsecond and created_at.tzinfo is UTC
                else _timestamp(created_at),
                "last_changed": last_changed
                if last_changed.microsecond and last_changed.tzinfo is UTC
                else _timestamp(last_changed),
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
