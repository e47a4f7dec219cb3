"""The sequencer: gives committed audit events consecutive leaf indexes, stores the tree nodes
they complete and signs a checkpoint for the new tree, one batch per transaction.

Ordering. Only one sequencer runs at a time (a PostgreSQL transaction-level advisory lock; SQLite,
used by the demo, serialises writers by itself). A batch takes the unsequenced events *visible to
it*, i.e. committed, in id order. An event that commits after a batch ran is sequenced by a later
batch even if its id is lower than events already in the log: leaf order is sequencing order, not
id order, and the log never contains an uncommitted (possibly rolled-back) event, nor skips one.

Consistency. A checkpoint is signed in the same transaction that stores the nodes, and only after
an RFC 9162 consistency proof, read from the stored nodes, verifies from the previous checkpoint's
root to the new root (checked with ``merkle.verify_consistency``, the hub's own code). If it does not, the batch is
rolled back and nothing is signed: the hub never signs two inconsistent checkpoints.

Refusals are loud. Before a batch, the sequencer checks that no audit row already claims a leaf
at or beyond the stored tree size (a row forged or restored with a ``leaf_index`` would otherwise
make every batch fail on the unique constraint, forever and quietly). Any refusal is logged as
critical and recorded in ``SequencerStatus`` outside the rolled-back batch, where the log's
status and health endpoints show it until a run succeeds. The sequencer only ever sets
``leaf_index`` on rows where it is NULL.
"""

import hashlib
import itertools
import json
import logging

import orjson
import rfc8785
from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from federation.canonical import in_fast_domain
from federation.db.bulk_insert import copy_rows
from federation.db.locks import xact_try_lock
from federation.db.lookups import bigint_array
from federation.enqueue import TaskName, nudge
from federation.gc_pause import cycle_collection_paused
from federation.transparency import log_selectors as selectors
from federation.transparency import merkle
from federation.transparency.audit import (
    DOCUMENT_COLUMNS,
    OCCURRED_AT_OUTSIDE_SQL,
    OCCURRED_AT_SQL,
    row_leaf_bytes,
)
from federation.transparency.checkpoints import sign_checkpoint
from federation.transparency.models import (
    AuditEvent,
    Checkpoint,
    MerkleNode,
    SequencerStatus,
    Witness,
)

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
    """Back to OK after a refusal (one cheap UPDATE, and only when the state changes; in SQL, as
    it runs after every run: the ORM's UPDATE cost more CPU than the statement)."""
    ok = SequencerStatus.State.OK
    connection = connections[router.db_for_write(SequencerStatus)]
    since = connection.ops.adapt_datetimefield_value(timezone.now())  # as the ORM stores it
    with connection.cursor() as cursor:
        cursor.execute(RECORD_SUCCESS_SQL, [ok, since, ok])


RECORD_SUCCESS_SQL = (
    f"UPDATE {SequencerStatus._meta.db_table} "  # noqa: S608 (a model's table)
    "SET state = %s, reason = '', since = %s, refusals = 0 WHERE id = 1 AND NOT state = %s"
)


def _sequence_batch(batch_size: int) -> int | None:
    # The collector paused: a batch's rows, documents and nodes are thousands of containers,
    # freed by reference counts, whose allocations made it walk the worker's every object
    # several times a batch (about 5 µs of CPU per event).
    alias = router.db_for_write(AuditEvent)
    with cycle_collection_paused(), transaction.atomic(using=alias):
        if not _take_lock(alias):
            return None
        previous, old_size, squatters = _log_state(alias)
        if (previous.tree_size if previous else 0) != old_size:
            _refuse(
                f"the stored tree has {old_size} leaves but the latest checkpoint signs "
                f"{previous.tree_size if previous else 'nothing'}"
            )
        if squatters:
            _refuse(
                f"audit rows already claim leaves at or beyond the tree size {old_size} "
                f"(event id, leaf index: {squatters}); they were not written by the sequencer; "
                "see docs/transparency.md, 'When the sequencer refuses'"
            )
        events = _unsequenced_rows(alias, batch_size)
        if not events and previous is not None:
            return 0
        leaf_hashes = _assign_leaf_indexes_and_hash(alias, events, old_size)
        frontier = selectors.read_nodes(set(merkle.root_nodes(old_size)))
        created = merkle.new_nodes(old_size=old_size, leaf_hashes=leaf_hashes, frontier=frontier)
        new_size = old_size + len(events)
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
        transaction.on_commit(_request_cosignatures, using=alias)
    return len(events)


def _log_state(alias: str) -> tuple[Checkpoint | None, int, list[tuple[int, int]]]:
    """The latest checkpoint (its size and root), the stored tree's size and the first five
    audit rows (id, leaf index) claiming a leaf at or beyond that size: on PostgreSQL in one
    statement (each ORM query cost the worker about half a millisecond of CPU, per batch)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        previous, old_size = selectors.latest_checkpoint(), selectors.stored_tree_size()
        squatters = (
            AuditEvent.objects.filter(leaf_index__gte=old_size)
            .order_by("leaf_index")
            .values_list("id", "leaf_index")[:5]
        )
        return previous, old_size, list(squatters)
    with connection.cursor() as cursor:
        cursor.execute(LOG_STATE_SQL)
        old_size, tree_size, root_hash, squatters = cursor.fetchone()
    previous = None if tree_size is None else Checkpoint(tree_size=tree_size, root_hash=root_hash)
    return previous, old_size, [(pk, leaf_index) for pk, leaf_index in squatters]


def _request_cosignatures() -> None:
    """After a checkpoint commits: ask for the collection, if this hub has witnesses at all (in
    SQL: it runs after every batch, and the ORM's query cost more CPU than the statement)."""
    with connections[router.db_for_read(Witness)].cursor() as cursor:
        cursor.execute(ACTIVE_WITNESS_SQL, [True])
        (any_active,) = cursor.fetchone()
    if any_active:
        nudge(TaskName.COLLECT_COSIGNATURES)


ACTIVE_WITNESS_SQL = f"SELECT EXISTS (SELECT 1 FROM {Witness._meta.db_table} WHERE active = %s)"  # noqa: S608


def _take_lock(alias: str) -> bool:
    if not xact_try_lock(SEQUENCER_LOCK_KEY, using=alias):
        return False
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(BATCH_PLANS)
    return True


_TABLE = AuditEvent._meta.db_table
# The next committed, unsequenced events (PostgreSQL), columns in ``DOCUMENT_COLUMNS`` order.
# occurred_at comes twice: as the leaf's text (formatted by PostgreSQL) or, outside the years
# where that equals Python's formatting, as the moment.
UNSEQUENCED_SQL = (
    f"SELECT id, {OCCURRED_AT_SQL}, {', '.join(DOCUMENT_COLUMNS[2:])}, "  # noqa: S608
    f"{OCCURRED_AT_OUTSIDE_SQL} FROM {_TABLE} "
    "WHERE leaf_index IS NULL ORDER BY id LIMIT %s"
)
# What a batch checks first (``_log_state``): the stored tree's size (its last level-0 node),
# the latest checkpoint, and the rows already claiming a leaf at or beyond that size.
LOG_STATE_SQL = (
    "SELECT size.n, latest.tree_size, latest.root_hash, ARRAY("  # noqa: S608 (model names)
    f"SELECT ARRAY[e.id, e.leaf_index] FROM {_TABLE} e WHERE e.leaf_index >= size.n "
    "ORDER BY e.leaf_index LIMIT 5) "
    f'FROM (SELECT COALESCE((SELECT "index" + 1 FROM {MerkleNode._meta.db_table} '
    'WHERE level = 0 ORDER BY "index" DESC LIMIT 1), 0) AS n) AS size '
    f"LEFT JOIN (SELECT tree_size, root_hash FROM {Checkpoint._meta.db_table} "
    "ORDER BY tree_size DESC LIMIT 1) AS latest ON true"
)
# Leaf indexes set once, from NULL, consecutive from the first parameter in the order of the
# second's ids (ascending: a ``bigint[]`` literal). Each row's leaf is its id's place in the
# array, found by binary search (``width_bucket``), and the rows by an index condition on their
# ids and the array's span: no join, whose plan hung on the table's estimated size (with a low
# one, or none, PostgreSQL compared every row of the batch with every other, 12.5 million
# comparisons for 5,000 events). ``num_nulls(x) = 1`` is ``x IS NULL`` written so that no index
# can serve it, so each row is found by its primary key (see BATCH_PLANS).
ASSIGN_SQL = (
    f"UPDATE {_TABLE} AS e SET leaf_index = b.first + width_bucket(e.id, b.ids) - 1 "  # noqa: S608
    "FROM (SELECT %s::bigint AS first, %s::bigint[] AS ids) AS b "
    "WHERE e.id = ANY(b.ids) AND e.id BETWEEN b.ids[1] AND b.ids[cardinality(b.ids)] "
    "AND num_nulls(e.leaf_index) = 1"
)
# A batch's statements must cost what the batch holds, not the backlog: read the next events in
# id order from the partial index ``auditevent_unsequenced`` and set each leaf index by a primary
# key lookup. Left to itself, the planner chose otherwise whenever the statistics lagged behind a
# backlog (a bulk load, before autovacuum analysed it): it fetched every unsequenced row (bitmap
# or sequential scan) and sorted, hashed or looped over all of them, once per batch, so sequencing a backlog took time
# quadratic in its size (1,000,000 events: 5,300 events/s). Scoped to the batch's transaction.
BATCH_PLANS = (
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true), "
    "set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), "
    "set_config('enable_seqscan', 'off', true)"
)


def _unsequenced_rows(alias: str, batch_size: int) -> list[tuple[tuple, bool]]:
    """The first ``batch_size`` committed, unsequenced events in id order, as tuples of
    ``DOCUMENT_COLUMNS`` (no model instances: the sequencer needs only their leaf bytes), and
    whether each one's data is known to be ``in_fast_domain`` (its leaf then written by orjson
    without walking it again)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":  # SQLite (the demo): the ORM converts its values
        unsequenced = AuditEvent.objects.filter(leaf_index__isnull=True).order_by("id")
        return [(row, False) for row in unsequenced.values_list(*DOCUMENT_COLUMNS)[:batch_size]]
    with connection.cursor() as cursor:
        cursor.execute(UNSEQUENCED_SQL, [batch_size])
        rows = cursor.fetchall()
    return [
        ((pk, text or moment, *columns, data), checked)
        for pk, text, *columns, data_text, moment in rows
        for data, checked in [_decoded(data_text)]
    ]


def _decoded(text: str) -> tuple[object, bool]:
    """An event's jsonb data as the JSONField's own decoding (``json.loads`` of its text) gives
    it, and whether it is ``in_fast_domain``. orjson decodes text, integers, lists and objects
    exactly as ``json.loads`` does, several times faster; data holding anything else (a float,
    which the two might round differently, and an integer beyond 64 bits, which orjson reads as
    a float) or that orjson refuses (too deep a nesting) is decoded by ``json.loads``, as
    before."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text), False
    if in_fast_domain(data):
        return data, True
    return json.loads(text), False


def _leaf_hashes(rows: list[tuple[tuple, bool]]) -> list[bytes]:
    sha256, prefix, leaf_bytes = hashlib.sha256, merkle.LEAF_PREFIX, row_leaf_bytes
    try:
        return [
            sha256(prefix + leaf_bytes(row, data_checked=checked)).digest() for row, checked in rows
        ]
    except (rfc8785.CanonicalizationError, RecursionError):
        # An event no writer of the hub makes (they store data through ``leaf_ready``); one
        # written some other way cannot be passed over, so it is named for the operator.
        for row, checked in rows:
            try:
                leaf_bytes(row, data_checked=checked)
            except (rfc8785.CanonicalizationError, RecursionError) as exc:
                _refuse(
                    f"audit event {row[0]} has data whose leaf cannot be written as RFC 8785 "
                    f"({type(exc).__name__}: {exc}); see docs/transparency.md, 'When the "
                    "sequencer refuses'"
                )
        raise


def _assign_leaf_indexes_and_hash(
    alias: str, events: list[tuple[tuple, bool]], old_size: int
) -> list[bytes]:
    """Give ``events`` the leaves from ``old_size`` on, in order, and return their leaf hashes.

    On PostgreSQL the UPDATE is sent in pipeline mode and the hashes are computed while the
    server runs it (the two use different cores); its result is checked before returning."""
    ids = [row[0] for row, _ in events]
    connection = connections[alias]
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_update(
            [AuditEvent(pk=pk, leaf_index=old_size + offset) for offset, pk in enumerate(ids)],
            ["leaf_index"],
            batch_size=500,
        )
        return _leaf_hashes(events)
    if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
        raise ValueError("events are sequenced in the order of their ids")  # ASSIGN_SQL's search
    raw = connection.connection
    with connection.wrap_database_errors, raw.pipeline() as pipeline:
        cursor = raw.cursor()
        cursor.execute(ASSIGN_SQL, [old_size, bigint_array(ids)])
        leaf_hashes = _leaf_hashes(events)
        pipeline.sync()
        updated = cursor.rowcount
    if updated != len(events):
        _refuse("an event chosen for sequencing already had a leaf index")
    return leaf_hashes


def _check_extends(previous: Checkpoint | None, *, new_size: int, new_root: bytes) -> None:
    """Refuse unless the stored tree's root is ``new_root`` and a consistency proof from the
    previous checkpoint, read from the stored nodes, verifies."""
    ranges = merkle.consistency_ranges(previous.tree_size, new_size) if previous else []
    # The proof's hashes and the root, from the stored nodes read in one query.
    *proof, stored_root = merkle.proof_hashes([*ranges, (0, new_size)], selectors.read_nodes)
    if stored_root != new_root:
        _refuse(f"the stored nodes give another root for tree size {new_size}")
    if previous is None:
        return
    try:
        merkle.verify_consistency(
            first=previous.tree_size,
            second=new_size,
            first_root=bytes(previous.root_hash),
            second_root=new_root,
            proof=proof,
        )
    except merkle.ProofError as exc:
        _refuse(
            f"tree size {new_size} is not consistent with checkpoint {previous.tree_size}: {exc}"
        )


def _refuse(reason: str) -> None:
    logger.critical("audit log sequencing refused, no checkpoint signed: %s", reason)
    raise LogInconsistent(reason)
