"""The sequencer: gives committed audit events consecutive leaf indexes, stores the tree nodes
they complete and signs a checkpoint for the new tree, one batch per transaction.

Ordering. Only one sequencer runs at a time (a PostgreSQL transaction-level advisory lock; SQLite,
used by the demo, serialises writers by itself). A batch takes the unsequenced events *visible to
it*, i.e. committed, in id order. An event that commits after a batch ran is sequenced by a later
batch even if its id is lower than events already in the log: leaf order is sequencing order, not
id order, and the log never contains an uncommitted (possibly rolled-back) event, nor skips one.

Consistency. A checkpoint is signed in the same transaction that stores the nodes, and only after
an RFC 9162 consistency proof, read from the stored nodes, verifies from the previous checkpoint's
root to the new root (checked with the standalone verifier's code). If it does not, the batch is
rolled back and nothing is signed: the hub never signs two inconsistent checkpoints.

Refusals are loud. Before a batch, the sequencer checks that no audit row already claims a leaf
at or beyond the stored tree size (a row forged or restored with a ``leaf_index`` would otherwise
make every batch fail on the unique constraint, forever and quietly). Any refusal is logged as
critical and recorded in ``SequencerStatus`` outside the rolled-back batch, where the log's
status and health endpoints show it until a run succeeds. The sequencer only ever sets
``leaf_index`` on rows where it is NULL.
"""

import logging

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from federation.bulk_insert import copy_rows
from federation.transparency import log_selectors as selectors
from federation.transparency import merkle, verifier
from federation.transparency.audit import event_leaf_bytes
from federation.transparency.checkpoints import sign_checkpoint
from federation.transparency.models import AuditEvent, Checkpoint, MerkleNode, SequencerStatus

logger = logging.getLogger(__name__)

# pg_try_advisory_xact_lock key reserved for the audit log sequencer ("CTLOG" in ASCII).
SEQUENCER_LOCK_KEY = 0x43544C4F47


class LogInconsistent(Exception):
    """The stored tree does not extend the last signed checkpoint; nothing is signed."""


def sequence_pending(*, batch_size: int | None = None) -> int:
    """Sequence every committed, unsequenced audit event, ``batch_size`` (default
    ``TRANSPARENCY_SEQUENCE_BATCH``) per transaction, signing a checkpoint after each batch.
    Returns the number of events sequenced; 0 when another sequencer holds the lock (it, or the
    periodic task, will sequence whatever is pending)."""
    batch_size = batch_size or settings.TRANSPARENCY_SEQUENCE_BATCH
    total = 0
    while True:
        try:
            sequenced = _sequence_batch(batch_size)
        except LogInconsistent as exc:
            _record_refusal(str(exc))
            raise
        if sequenced is None:
            return total
        total += sequenced
        if sequenced < batch_size:
            _record_success()
            return total


def _record_refusal(reason: str) -> None:
    now = timezone.now()
    with transaction.atomic(using=router.db_for_write(SequencerStatus)):
        status, _ = SequencerStatus.objects.select_for_update().get_or_create(pk=1)
        if status.state != SequencerStatus.State.REFUSED:
            status.state = SequencerStatus.State.REFUSED
            status.since = now
            status.refusals = 0
        status.reason = reason
        status.last_refused_at = now
        status.refusals += 1
        status.save()


def _record_success() -> None:
    """Back to OK after a refusal (one cheap UPDATE, and only when the state changes)."""
    SequencerStatus.objects.filter(pk=1).exclude(state=SequencerStatus.State.OK).update(
        state=SequencerStatus.State.OK, reason="", since=timezone.now(), refusals=0
    )


def _sequence_batch(batch_size: int) -> int | None:
    alias = router.db_for_write(AuditEvent)
    with transaction.atomic(using=alias):
        if not _take_lock(alias):
            return None
        previous = selectors.latest_checkpoint()
        old_size = selectors.stored_tree_size()
        if (previous.tree_size if previous else 0) != old_size:
            _refuse(
                f"the stored tree has {old_size} leaves but the latest checkpoint signs "
                f"{previous.tree_size if previous else 'nothing'}"
            )
        squatters = list(
            AuditEvent.objects.filter(leaf_index__gte=old_size)
            .order_by("leaf_index")
            .values_list("id", "leaf_index")[:5]
        )
        if squatters:
            _refuse(
                f"audit rows already claim leaves at or beyond the tree size {old_size} "
                f"(event id, leaf index: {squatters}); they were not written by the sequencer; "
                "see docs/transparency.md, 'When the sequencer refuses'"
            )
        events = list(
            AuditEvent.objects.filter(leaf_index__isnull=True).order_by("id")[:batch_size]
        )
        if not events and previous is not None:
            return 0
        leaf_hashes = [merkle.leaf_hash(event_leaf_bytes(event)) for event in events]
        frontier = selectors.read_nodes(set(merkle.root_nodes(old_size)))
        created = merkle.new_nodes(old_size=old_size, leaf_hashes=leaf_hashes, frontier=frontier)
        new_size = old_size + len(events)
        _assign_leaf_indexes(alias, events, old_size)
        copy_rows(
            MerkleNode,
            ["level", "index", "hash"],
            [(level, index, digest) for (level, index), digest in created.items()],
        )
        new_root = merkle.range_hash(0, new_size, {**frontier, **created})
        _check_extends(previous, new_size=new_size, new_root=new_root)
        signed_at = timezone.now().replace(microsecond=0)
        Checkpoint.objects.create(
            tree_size=new_size,
            root_hash=new_root,
            note=sign_checkpoint(tree_size=new_size, root_hash=new_root, signed_at=signed_at),
            created_at=signed_at,
        )
    return len(events)


def _take_lock(alias: str) -> bool:
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return True  # SQLite (the demo) has one writer at a time anyway
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEQUENCER_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _assign_leaf_indexes(alias: str, events: list[AuditEvent], old_size: int) -> None:
    for offset, event in enumerate(events):
        event.leaf_index = old_size + offset
    connection = connections[alias]
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_update(events, ["leaf_index"], batch_size=500)
        return
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS e SET leaf_index = v.leaf_index "  # noqa: S608 (quoted table name)
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, leaf_index) "
            "WHERE e.id = v.id AND e.leaf_index IS NULL",
            [[event.pk for event in events], [event.leaf_index for event in events]],
        )
        if cursor.rowcount != len(events):
            _refuse("an event chosen for sequencing already had a leaf index")


def _check_extends(previous: Checkpoint | None, *, new_size: int, new_root: bytes) -> None:
    """Refuse unless the stored tree's root is ``new_root`` and a consistency proof from the
    previous checkpoint, read from the stored nodes, verifies."""
    stored_root = selectors.root_hash(tree_size=new_size) if new_size else merkle.EMPTY_ROOT
    if stored_root != new_root:
        _refuse(f"the stored nodes give another root for tree size {new_size}")
    if previous is None:
        return
    proof = selectors.consistency_proof(
        first=previous.tree_size, second=new_size, published_size=new_size
    )
    try:
        verifier.verify_consistency(
            previous.tree_size,
            new_size,
            bytes(previous.root_hash),
            new_root,
            proof.consistency_path,
        )
    except verifier.ProofError as exc:
        _refuse(
            f"tree size {new_size} is not consistent with checkpoint {previous.tree_size}: {exc}"
        )


def _refuse(reason: str) -> None:
    logger.critical("audit log sequencing refused, no checkpoint signed: %s", reason)
    raise LogInconsistent(reason)
