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

from federation.contributions.models import Contribution, Entry, EntryLabel
from federation.errors import Gone
from federation.sync.changes import VISIBLE_STATES
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
    signal_type: str | None = None,
    label: str | None = None,
    incident: str | None = None,
) -> ChangesPage:
    """Up to ``limit`` changes after position ``after`` (``None``: from the start of the stream),
    oldest first, each entry once (its last change in the page), rendered as it stands now.

    Raises ``Gone`` (410 ``stale_cursor``) when compaction removed a removal the reader had not
    yet read: the reader must start again from the export.
    """
    start = after or 0
    # Read before the page: every position up to here was committed before the page's query
    # started, so the query sees all of them and the next cursor may skip to here.
    last_position = stream_state().last_position
    if connections[router.db_for_read(EntryChange)].vendor == "postgresql":
        rows = _sql_changes(start, limit + 1, signal_type, label, incident)
    else:
        rows = _portable_changes(start, limit + 1, signal_type, label, incident)
    more = len(rows) > limit
    rows = rows[:limit]
    # Checked after the page was read: a compaction that committed before the read raised the
    # horizon before this check, so a reader can never be handed a page with a hole in it.
    if after is not None and after < stream_state().compacted_through:
        raise Gone(
            "This cursor is older than the stream's retention of removals; start again from the "
            "export.",
            code="stale_cursor",
            details={"export": EXPORT_PATH},
        )
    position = rows[-1][0] if rows else start
    if not more:
        position = max(position, last_position)
    last_index = {row[1]: index for index, row in enumerate(rows)}
    items = [row[2] for index, row in enumerate(rows) if last_index[row[1]] == index]
    return ChangesPage(items=items, position=position, more=more)


# --- Rendering on PostgreSQL: the documents are built by the database ---------------------------
#
# One statement per page: the page's rows (a CTE), then each entry's labels and add contributions
# by index lookups (LATERAL), whose cost is linear in the page whatever the planner's
# estimates. Python only joins the ready JSON texts.

_TIME = """to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_DOCUMENT_SQL = """
WITH page AS MATERIALIZED ({page})
SELECT e.sort_key, e.id,
    CASE WHEN e.state IN ('vetted', 'disputed') THEN {upsert} ELSE json_build_object(
        'op', 'remove',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'reason', e.state,
        'last_changed', {last_changed}
    ) END::text
FROM page AS e
LEFT JOIN LATERAL (
    SELECT json_agg(l.slug ORDER BY l.slug) AS slugs
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
_UPSERT_SQL = """json_build_object(
        'op', 'upsert',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'state', e.state,
        'labels', COALESCE(labels.slugs, '[]'::json),
        'contributors', COALESCE(adds.contributors, '[]'::jsonb),
        'incidents', COALESCE(to_json(adds.incidents), '[]'::json),
        'quality', adds.quality,
        'first_seen', {first_seen},
        'last_changed', {last_changed}
    )"""
_ADDS_AGGREGATES = """jsonb_agg(DISTINCT jsonb_build_object('member', o.slug, 'hub', c.origin_hub))
               FILTER (WHERE c.status = 'active') AS contributors,
           max(c.quality) FILTER (WHERE c.status = 'active') AS quality,
           array_agg(DISTINCT c.incident_id::text) FILTER (WHERE c.incident_id IS NOT NULL)
               AS incidents"""
# One export chunk in one statement and one row: the visible entries of an id range (low, high],
# their labels and add contributions aggregated per entry over the chunk's id range (two index
# range scans and hash joins, instead of two lookups per entry), the documents joined by the
# database into the chunk's NDJSON text. Every visible entry is an upsert.
_EXPORT_CHUNK_SQL = """
WITH page AS MATERIALIZED (
    SELECT e.id, e.signal_type, e.value, e.state, e.created_at, e.updated_at, e.state_changed_at
    FROM federation_entry e
    WHERE e.id > %s AND e.id <= %s AND e.state IN ('vetted', 'disputed')
), bounds AS MATERIALIZED (SELECT min(id) AS low, max(id) AS high FROM page),
labels AS (
    SELECT el.entry_id, json_agg(l.slug ORDER BY l.slug) AS slugs
    FROM federation_entrylabel el JOIN federation_label l ON l.id = el.label_id
    WHERE el.entry_id BETWEEN (SELECT low FROM bounds) AND (SELECT high FROM bounds)
    GROUP BY el.entry_id
), adds AS (
    SELECT c.entry_id, {adds}
    FROM federation_contribution c JOIN members_organisation o ON o.id = c.organisation_id
    WHERE c.entry_id BETWEEN (SELECT low FROM bounds) AND (SELECT high FROM bounds)
        AND c.action = 'add'
    GROUP BY c.entry_id
)
SELECT count(*), max(e.id), string_agg({upsert}::text, E'\\n' ORDER BY e.id)
FROM page AS e
LEFT JOIN labels ON labels.entry_id = e.id
LEFT JOIN adds ON adds.entry_id = e.id
"""
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
    .replace("{adds}", _ADDS_AGGREGATES)
    .replace("{last_changed}", _TIME.format("GREATEST(e.updated_at, e.state_changed_at)"))
)
_EXPORT_CHUNK_SQL = _EXPORT_CHUNK_SQL.replace("{upsert}", _UPSERT_SQL).replace(
    "{adds}", _ADDS_AGGREGATES
)


def _sql_documents(page_sql: str, params: list) -> list[tuple[int, int, bytes]]:
    connection = connections[router.db_for_read(EntryChange)]
    with connection.cursor() as cursor:
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
            "(e.state NOT IN ('vetted', 'disputed') OR EXISTS (SELECT 1 FROM federation_entrylabel el JOIN federation_label l "
            "ON l.id = el.label_id WHERE el.entry_id = e.id AND l.slug = %s))"
        )
        params.append(label)
    if incident:
        where.append(
            "(e.state NOT IN ('vetted', 'disputed') OR EXISTS (SELECT 1 FROM federation_contribution ic WHERE "
            "ic.entry_id = e.id AND ic.action = 'add' AND ic.incident_id = %s))"
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
    gone = ~Q(entry__state__in=VISIBLE_STATES)
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


def render_entries(rows: list[tuple]) -> list[bytes]:
    """JSON documents for ``(entry_id, *_ENTRY_FIELDS)`` rows: an upsert for an entry members
    see, a removal otherwise (the portable twin of ``_DOCUMENT_SQL``)."""
    details = _details([row[0] for row in rows if row[3] in VISIBLE_STATES])
    items = []
    for entry_id, signal_type, value, state, created_at, updated_at, state_changed_at in rows:
        signal = {"type": signal_type, "value": value}
        last_changed = _timestamp(max(updated_at, state_changed_at))
        if state not in VISIBLE_STATES:
            item = {"op": "remove", "signal": signal, "reason": state, "last_changed": last_changed}
        else:
            labels, contributors, incidents, quality = details[entry_id]
            item = {
                "op": "upsert",
                "signal": signal,
                "state": state,
                "labels": labels,
                "contributors": contributors,
                "incidents": incidents,
                "quality": quality,
                "first_seen": _timestamp(created_at),
                "last_changed": last_changed,
            }
        items.append(orjson.dumps(item))
    return items


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
    contributors: dict[int, set[tuple[str, str]]] = defaultdict(set)
    incidents: dict[int, set[str]] = defaultdict(set)
    quality: dict[int, int] = {}
    for entry_id, member, hub, status, value, incident_id in (
        Contribution.objects.filter(entry_id__in=entry_ids, action=Contribution.Action.ADD)
        .order_by()
        .values_list(
            "entry_id", "organisation__slug", "origin_hub", "status", "quality", "incident"
        )
    ):
        if incident_id is not None:
            incidents[entry_id].add(str(incident_id))
        if status != Contribution.Status.ACTIVE:
            continue
        contributors[entry_id].add((member, hub))
        if value is not None and value > quality.get(entry_id, -1):
            quality[entry_id] = value
    return {
        entry_id: (
            sorted(labels.get(entry_id, ())),
            # By hub, then member: the order of PostgreSQL's jsonb objects {"hub", "member"}.
            [
                {"member": m, "hub": h}
                for m, h in sorted(contributors.get(entry_id, ()), key=lambda c: (c[1], c[0]))
            ],
            sorted(incidents.get(entry_id, ())),
            quality.get(entry_id),
        )
        for entry_id in entry_ids
    }


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
            .filter(pk__gt=last_id, state__in=VISIBLE_STATES)
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

    Rendering is PostgreSQL's work and runs on one core per connection, so the chunks (id ranges
    of ``chunk_size``) are rendered by ``settings.SYNC_EXPORT_READERS`` connections at once, each
    in this transaction's snapshot (``pg_export_snapshot``; ``SET TRANSACTION SNAPSHOT``), and
    yielded in id order, at most two chunks per reader ahead of the client. Inside a caller's
    transaction (``parallel`` false: a savepoint cannot export its snapshot, and other
    connections would not see its writes) the chunks are read one by one on this connection.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(max(id), 0) FROM federation_entry")
        (high,) = cursor.fetchone()
        ranges = [(low, min(low + chunk_size, high)) for low in range(0, high, chunk_size)]
        if parallel:
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
    count = 0
    with contextlib.ExitStack() as stack:
        if parallel:
            readers = stack.enter_context(
                _SnapshotReaders(connection, snapshot, settings.SYNC_EXPORT_READERS)
            )
            rows = readers.ordered(_EXPORT_CHUNK_SQL, ranges)
        else:
            rows = (_fetch_chunk(connection, bounds) for bounds in ranges)
        for chunk_count, text in rows:
            if chunk_count:
                count += chunk_count
                yield text.encode() + b"\n"
    return count


def _fetch_chunk(connection, bounds: tuple[int, int]) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(_EXPORT_CHUNK_SQL, list(bounds))
        chunk_count, _, text = cursor.fetchone()
    return chunk_count, text


class _SnapshotReaders:
    """A few extra connections that read in one exported snapshot, queried in parallel."""

    def __init__(self, connection, snapshot: str, readers: int) -> None:
        self._params = connection.get_connection_params()
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

    def ordered(self, sql: str, ranges: list[tuple[int, int]]) -> Iterator[tuple]:
        """One result row per range, in the order of ``ranges``."""
        pending: deque[Future] = deque()
        upcoming = iter(ranges)
        for bounds in itertools.islice(upcoming, 2 * self._readers):
            pending.append(self._pool.submit(self._fetch, sql, bounds))
        while pending:
            row = pending.popleft().result()
            for bounds in itertools.islice(upcoming, 1):
                pending.append(self._pool.submit(self._fetch, sql, bounds))
            yield row

    def _fetch(self, sql: str, bounds: tuple[int, int]) -> tuple:
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
            self._local.connection = reader
        chunk_count, _, text = reader.execute(sql, list(bounds)).fetchone()
        return chunk_count, text


def _line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)
