"""Reading the shared set for members: pages of the change stream after a position, and a
consistent snapshot of the whole set for the export (docs/sync.md).

Both render an entry the same way, as it stands when read, with a fixed number of queries per
page or chunk: the rows themselves, their labels, their add contributions.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson
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
    items: list[dict[str, Any]]
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
    changes = EntryChange.objects.filter(position__gt=start)
    if signal_type:
        changes = changes.filter(entry__signal_type=signal_type)
    # Labels and incidents only accumulate on an entry (docs/sync.md), so a filtered copy needs
    # no removal for "no longer matches"; removals always pass the filter.
    gone = ~Q(entry__state__in=VISIBLE_STATES)
    if label:
        changes = changes.filter(
            gone
            | Q(Exists(EntryLabel.objects.filter(entry_id=OuterRef("entry_id"), label__slug=label)))
        )
    if incident:
        changes = changes.filter(
            gone
            | Q(
                Exists(
                    Contribution.objects.filter(
                        entry_id=OuterRef("entry_id"),
                        action=Contribution.Action.ADD,
                        incident_id=incident,
                    )
                )
            )
        )
    rows = list(
        changes.order_by("position").values_list(
            "position", "entry_id", *(f"entry__{name}" for name in _ENTRY_FIELDS)
        )[: limit + 1]
    )
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
    kept = [row[1:] for index, row in enumerate(rows) if last_index[row[1]] == index]
    return ChangesPage(items=render_entries(kept), position=position, more=more)


def render_entries(rows: list[tuple]) -> list[dict[str, Any]]:
    """Items for ``(entry_id, *_ENTRY_FIELDS)`` rows: an upsert for an entry members see, a
    removal otherwise."""
    details = _details([row[0] for row in rows if row[3] in VISIBLE_STATES])
    items = []
    for entry_id, signal_type, value, state, created_at, updated_at, state_changed_at in rows:
        signal = {"type": signal_type, "value": value}
        last_changed = max(updated_at, state_changed_at)
        if state not in VISIBLE_STATES:
            items.append(
                {"op": "remove", "signal": signal, "reason": state, "last_changed": last_changed}
            )
            continue
        labels, contributors, incidents, quality = details.get(entry_id, ((), (), (), None))
        items.append(
            {
                "op": "upsert",
                "signal": signal,
                "state": state,
                "labels": labels,
                "contributors": contributors,
                "incidents": incidents,
                "quality": quality,
                "first_seen": created_at,
                "last_changed": last_changed,
            }
        )
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
            [{"member": m, "hub": h} for m, h in sorted(contributors.get(entry_id, ()))],
            sorted(incidents.get(entry_id, ())),
            quality.get(entry_id),
        )
        for entry_id in entry_ids
    }


def shared_set_lines(*, chunk_size: int = 5_000) -> Iterator[bytes]:
    """The shared set as NDJSON lines (one upsert per entry members see, in id order), then an
    ``end`` line with the cursor from which the delta API continues.

    All of it is read in one REPEATABLE READ transaction on PostgreSQL, so it is one snapshot, and
    entries are fetched with a server-side cursor, ``chunk_size`` at a time: memory stays bounded
    whatever the size of the set.

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
    with transaction.atomic(using=alias):
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        position = stream_state().last_position  # the snapshot's first read
        rows = (
            Entry.objects.using(alias)
            .filter(state__in=VISIBLE_STATES)
            .order_by("pk")
            .values_list("pk", *_ENTRY_FIELDS)
            .iterator(chunk_size=chunk_size)
        )
        count = 0
        for chunk in _chunks(rows, chunk_size):
            count += len(chunk)
            yield b"".join(_line(item) for item in render_entries(chunk))
        yield _line({"op": "end", "count": count, "cursor": cursor_for(position)})


def _line(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk
