"""The change stream's sequencer and compaction.

Ordering (the audit log's pattern, docs/architecture.md "Ordering"). Writers insert change rows
with no position. One sequencer at a time (a PostgreSQL transaction-level advisory lock; SQLite,
used by the demo, has one writer at a time anyway) takes the unsequenced rows *visible to it* —
committed ones — in id order and numbers them from ``SyncState.last_position + 1`` on, in the
same transaction that advances ``last_position``. A position therefore exists only for a
committed row, positions are handed out consecutively and never reused, and a row that commits
later is numbered later whatever its id: a reader that has seen position 11 never later finds a
new position 10.

Compaction runs under the same lock. The delta API renders each entry as it stands, so a change
followed by a later change of the same entry says nothing the later one does not: superseded
rows are deleted at once. An entry's last row that is a removal stays for the retention period,
then goes too; ``compacted_through`` records the highest position so removed, and a cursor below
it is refused as stale (it could have missed that removal).

Key bindings (``federation.propagation.models.KeyBinding``) take positions from the same
counter, in the same way, so that the pull feed, which reads the stream, also carries key
bindings and revocations. They are never compacted (a key's bindings are its history); members'
delta API reads changes only, and skips the positions bindings hold.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from federation.contributions.models import SHARED_STATES
from federation.db.locks import xact_lock
from federation.db.plans import bounded_plan
from federation.propagation.models import KeyBinding
from federation.sync.models import EntryChange, SyncState

# pg_advisory_xact_lock key reserved for the sync stream ("SYNC" in ASCII); the audit log's
# sequencer uses another.
SYNC_LOCK_KEY = 0x53594E43


def sync_sequence_pending(*, batch_size: int | None = None) -> int:
    """Give positions to every committed, unsequenced change, ``batch_size`` (default
    ``SYNC_SEQUENCE_BATCH``) per transaction. Returns how many were sequenced."""
    batch_size = batch_size or settings.SYNC_SEQUENCE_BATCH
    total = 0
    while True:
        sequenced = _sequence_batch(batch_size)
        total += sequenced
        if sequenced < batch_size:
            return total


def _sequence_batch(batch_size: int) -> int:
    alias = router.db_for_write(EntryChange)
    with transaction.atomic(using=alias):
        _lock(alias)
        # Read after the lock: the previous sequencer's commit is visible to this statement.
        state, _ = SyncState.objects.using(alias).get_or_create(pk=1)
        base = state.last_position
        # The unsequenced rows by a plain scan of their partial index, whatever the statistics
        # (``federation.db.plans``): it also marks the entries of rows sequenced before as dead.
        with bounded_plan(using=alias, plain_index_scans=True):
            sequenced = _number(EntryChange, alias, base, batch_size)
            if sequenced < batch_size:
                # Key bindings share the positions (the pull feed carries them as key items),
                # after the changes of the same run: the two are independent of each other.
                sequenced += _number(KeyBinding, alias, base + sequenced, batch_size - sequenced)
        if sequenced:
            SyncState.objects.using(alias).filter(pk=1).update(last_position=base + sequenced)
    return sequenced


def _number(model, alias: str, base: int, limit: int) -> int:
    """Give ``model``'s committed, unsequenced rows (at most ``limit``, in id order) the
    positions after ``base``; how many."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS c SET position = b.position FROM ("  # noqa: S608 (quoted name)
                "SELECT id, %s + row_number() OVER (ORDER BY id) AS position FROM ("
                f"SELECT id FROM {table} WHERE position IS NULL ORDER BY id LIMIT %s) AS p"
                ") AS b WHERE c.id = b.id",
                [base, limit],
            )
            return cursor.rowcount
    rows = list(model.objects.using(alias).filter(position__isnull=True).order_by("id")[:limit])
    for offset, row in enumerate(rows, start=1):
        row.position = base + offset
    model.objects.using(alias).bulk_update(rows, ["position"], batch_size=500)
    return len(rows)


@dataclass(frozen=True)
class Compaction:
    superseded: int
    removals: int
    compacted_through: int


def sync_changes_compact(*, now: datetime | None = None) -> Compaction:
    """Delete superseded changes, and removals older than ``SYNC_REMOVAL_RETENTION_DAYS``."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SYNC_REMOVAL_RETENTION_DAYS)
    alias = router.db_for_write(EntryChange)
    changes = EntryChange.objects.using(alias)
    with transaction.atomic(using=alias):
        _lock(alias)
        state, _ = SyncState.objects.using(alias).get_or_create(pk=1)
        later = changes.filter(entry_id=OuterRef("entry_id"), position__gt=OuterRef("position"))
        superseded, _ = changes.filter(Exists(later), position__isnull=False).delete()
        # What is left is each entry's last sequenced change; those of entries members no longer
        # see are removals.
        expired = changes.filter(position__isnull=False, recorded_at__lt=cutoff).exclude(
            entry__state__in=SHARED_STATES
        )
        highest = expired.aggregate(highest=Max("position"))["highest"]
        removals = 0
        if highest is not None:
            removals, _ = changes.filter(pk__in=list(expired.values_list("pk", flat=True))).delete()
            state.compacted_through = max(state.compacted_through, highest)
        state.compacted_at = now
        SyncState.objects.using(alias).filter(pk=1).update(
            compacted_through=state.compacted_through, compacted_at=now
        )
    return Compaction(
        superseded=superseded, removals=removals, compacted_through=state.compacted_through
    )


def _lock(alias: str) -> None:
    # Waits rather than gives up: a nudge that arrives while another batch runs still sequences
    # the rows it was sent for, so lag stays below a second.
    xact_lock(SYNC_LOCK_KEY, using=alias)
