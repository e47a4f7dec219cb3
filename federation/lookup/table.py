"""The lookup table (docs/private-lookup.md, "The table"): for each exact-hash entry of the shared
set (``md5`` and ``sha256``, vetted or disputed, as members see it), the first
``LOOKUP_TAG_BYTES`` bytes of the PRF output of its signal under the current key.

``lookup_table_refresh`` keeps it current from the member change stream (docs/sync.md), as the
match index does: it reads the entries whose changes have positions after the table's and
applies their current state; a tag is computed once per entry (one ``Evaluate``), and a removal
leaves a tombstone so that deltas carry it. The table is built whole only when the key changes
(or when its position falls behind the stream's compaction horizon).
"""

from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from federation.contributions.models import SHARED_STATES, Entry
from federation.db.locks import xact_try_lock
from federation.errors import Conflict, Unavailable
from federation.lookup import voprf
from federation.lookup.keys import OprfKey, current_key
from federation.lookup.models import LookupState, LookupTag
from federation.sync.models import EntryChange
from federation.sync.stream import stream_state

SIGNAL_TYPES = ("md5", "sha256")
INPUT_PREFIX = b"concordat-lookup-v1:"
REMOVED = "removed"
# pg_advisory_xact_lock key of the table's refresh ("LOOK" in ASCII).
LOOKUP_LOCK_KEY = 0x4C4F4F4B
_PAGE = 10_000
REQUEST_CATCH_UP = 1_000
_VISIBLE = {str(state) for state in SHARED_STATES}


def lookup_input(signal_type: str, value: str) -> bytes:
    """The OPRF input of one exact hash: ``concordat-lookup-v1:<type>:<lowercase hex>``."""
    return INPUT_PREFIX + f"{signal_type}:{value.lower()}".encode("ascii")


def lookup_tag(key: OprfKey, signal_type: str, value: str) -> bytes:
    return voprf.evaluate(key.secret, lookup_input(signal_type, value))[: settings.LOOKUP_TAG_BYTES]


@dataclass(frozen=True)
class Refresh:
    rebuilt: bool
    applied: int
    position: int


def lookup_table_refresh(*, rebuild: bool = True, max_changes: int | None = None) -> Refresh | None:
    """Bring the table up to the stream's last position (or ``max_changes`` changes further:
    a request catches up a little itself, the beat task does the rest); build it whole first if
    its key is not the current one (only when ``rebuild``: a request never builds). Returns None
    when another process holds the refresh (or a rebuild is needed and not allowed)."""
    key = current_key()
    with transaction.atomic():
        if not xact_try_lock(LOOKUP_LOCK_KEY):
            return None
        state, _ = LookupState.objects.select_for_update().get_or_create(pk=1)
        stream = stream_state()
        if state.key_id != key.key_id or state.position < stream.compacted_through:
            if not rebuild:
                return None
            return _rebuild(state, key, stream.last_position)
        if stream.last_position <= state.position:
            return Refresh(rebuilt=False, applied=0, position=state.position)
        applied = _catch_up(state, key, stream.last_position, max_changes)
        return Refresh(rebuilt=False, applied=applied, position=state.position)


def _rebuild(state: LookupState, key: OprfKey, position: int) -> Refresh:
    # Entries read after the position: a change committed in between is read here and again,
    # from the stream, by the next catch-up; applying a change twice is harmless.
    LookupTag.objects.all().delete()
    rows = (
        Entry.objects.filter(state__in=SHARED_STATES, signal_type__in=SIGNAL_TYPES)
        .values_list("pk", "signal_type", "value", "state")
        .order_by("pk")
    )
    batch: list[LookupTag] = []
    count = 0
    for pk, signal_type, value, entry_state in rows.iterator(chunk_size=_PAGE):
        tag = lookup_tag(key, signal_type, value)
        batch.append(LookupTag(entry_id=pk, tag=tag, state=entry_state, position=position))
        if len(batch) >= _PAGE:
            LookupTag.objects.bulk_create(batch)
            count += len(batch)
            batch = []
    LookupTag.objects.bulk_create(batch)
    count += len(batch)
    state.key_id = key.key_id
    state.position = state.base_position = position
    state.built_at = timezone.now()
    state.save()
    return Refresh(rebuilt=True, applied=count, position=position)


def _catch_up(state: LookupState, key: OprfKey, last_position: int, max_changes: int | None) -> int:
    applied = read = 0
    start = state.position
    budget = max_changes if max_changes is not None else float("inf")
    while start < last_position and read < budget:
        changes = list(
            EntryChange.objects.filter(position__gt=start, position__lte=last_position)
            .order_by("position")
            .values_list("entry_id", "position")[: int(min(_PAGE, budget - read))]
        )
        if not changes:
            start = last_position
            break
        read += len(changes)
        latest = dict(changes)  # entry -> its last position in the page
        entries = Entry.objects.filter(pk__in=latest).values_list(
            "pk", "signal_type", "value", "state"
        )
        existing = {tag.entry_id: tag for tag in LookupTag.objects.filter(entry_id__in=latest)}
        created, updated = [], []
        for pk, signal_type, value, entry_state in entries:
            visible = entry_state in _VISIBLE and signal_type in SIGNAL_TYPES
            row = existing.get(pk)
            target = entry_state if visible else REMOVED
            if row is None:
                if visible:
                    created.append(
                        LookupTag(
                            entry_id=pk,
                            tag=lookup_tag(key, signal_type, value),
                            state=target,
                            position=latest[pk],
                        )
                    )
            elif row.state != target:
                row.state, row.position = target, latest[pk]
                updated.append(row)
        LookupTag.objects.bulk_create(created)
        LookupTag.objects.bulk_update(updated, ["state", "position"])
        applied += len(created) + len(updated)
        start = changes[-1][1]
    state.position = start if start < last_position and read >= budget else last_position
    state.save(update_fields=["position"])
    return applied


# --- Reading --------------------------------------------------------------------------------------


def _ready_state(key: OprfKey) -> LookupState:
    state = LookupState.objects.filter(pk=1).first()
    if state is None or state.key_id != key.key_id:
        raise Unavailable(
            "The lookup table is being built under the current key; try again shortly.",
            code="lookup_table_building",
        )
    return state


def _current_key_caught_up() -> OprfKey:
    key = current_key()
    # Cheap when current; a request never rebuilds, and catches up at most a page of the
    # stream itself (each new entry costs one Evaluate), leaving a backlog to the beat task.
    lookup_table_refresh(rebuild=False, max_changes=REQUEST_CATCH_UP)
    return key


@dataclass(frozen=True)
class Table:
    key: OprfKey
    position: int
    tags: dict[str, bytes]  # state -> its tags, sorted, concatenated


def lookup_table() -> Table:
    """The whole table: per state, the sorted concatenated tags (one consistent read)."""
    key = _current_key_caught_up()
    with _snapshot():
        state = _ready_state(key)
        tags: dict[str, list[bytes]] = {str(s): [] for s in SHARED_STATES}
        rows = LookupTag.objects.exclude(state=REMOVED).values_list("state", "tag").order_by()
        for tag_state, tag in rows.iterator(chunk_size=50_000):
            tags[tag_state].append(bytes(tag))
    return Table(
        key=key,
        position=state.position,
        tags={name: b"".join(sorted(values)) for name, values in tags.items()},
    )


@dataclass(frozen=True)
class TableChanges:
    key: OprfKey
    since: int
    position: int
    more: bool
    changes: list[tuple[bytes, str]]  # (tag, state or "removed"), oldest first


def lookup_table_changes(*, key_id: str, since: int) -> TableChanges:
    """The table's changes after ``since`` under key ``key_id``; 409 ``lookup_table_stale`` when
    the key changed or the table was rebuilt after ``since`` (download it whole)."""
    key = _current_key_caught_up()
    with _snapshot():
        state = _ready_state(key)
        if key_id != key.key_id or since < state.base_position or since > state.position:
            raise Conflict(
                "This table position is not one this hub can continue from (the key changed, the "
                "table was rebuilt, or the position is unknown); download the table whole.",
                code="lookup_table_stale",
                details={"key_id": key.key_id, "base_position": state.base_position},
            )
        limit = settings.LOOKUP_CHANGES_PAGE
        rows = list(
            LookupTag.objects.filter(position__gt=since, position__lte=state.position)
            .order_by("position")
            .values_list("tag", "state", "position")[: limit + 1]
        )
    more = len(rows) > limit
    rows = rows[:limit]
    position = rows[-1][2] if more else state.position
    return TableChanges(
        key=key,
        since=since,
        position=position,
        more=more,
        changes=[(bytes(tag), tag_state) for tag, tag_state, _ in rows],
    )


@contextmanager
def _snapshot():
    """One transaction in which the state row and the tags agree (REPEATABLE READ on
    PostgreSQL, unless already inside a transaction, as in tests)."""
    nested = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not nested:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
