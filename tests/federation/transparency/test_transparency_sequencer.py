"""The sequencer: batches, one checkpoint per batch, proofs from the stored levels, refusal to
sign an inconsistent tree, and no double assignment when two sequencers race."""

import json
import threading
from datetime import UTC, datetime

import pytest
from concordat_client import verifier
from django.db import connection, connections
from django.utils import timezone
from pymerkle import InmemoryTree

from federation import canonical
from federation.db.lookups import bigint_array
from federation.transparency import log_selectors as selectors
from federation.transparency import merkle, sequencer
from federation.transparency.audit import (
    AuditRecord,
    audit_record,
    audit_record_for_ids,
    audit_record_many,
    event_leaf_bytes,
)
from federation.transparency.checkpoints import hub_verifier_key
from federation.transparency.models import AuditEvent, Checkpoint, MerkleNode, SequencerStatus
from federation.transparency.sequencer import LogInconsistent, sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers

ACTOR = Actor.system("test")


def record(count: int, *, start: int = 0) -> None:
    audit_record_many(
        AuditRecord(
            action="test.event", actor=ACTOR, object_type="thing", object_id=str(i), data={"n": i}
        )
        for i in range(start, start + count)
    )


def logged_leaf_bytes() -> list[bytes]:
    return [event_leaf_bytes(e) for e in AuditEvent.objects.order_by("leaf_index")]


@pytest.mark.django_db
def test_an_empty_log_gets_a_signed_checkpoint_of_size_zero():
    assert sequence_pending() == 0
    checkpoint = selectors.latest_checkpoint()
    assert checkpoint.tree_size == 0 and bytes(checkpoint.root_hash) == merkle.EMPTY_ROOT
    signed = verifier.verify_checkpoint(
        checkpoint.note, verifier.parse_verifier_key(hub_verifier_key())
    )
    assert (signed.tree_size, signed.root_hash) == (0, merkle.EMPTY_ROOT)


@pytest.mark.django_db
def test_events_are_sequenced_in_batches_with_a_checkpoint_per_batch():
    record(23)
    assert sequence_pending(batch_size=5) == 23
    assert list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", flat=True)) == [
        5,
        10,
        15,
        20,
        23,
    ]
    assert sorted(AuditEvent.objects.values_list("leaf_index", flat=True)) == list(range(23))
    # the id order of events written together is their leaf order
    assert list(AuditEvent.objects.order_by("id").values_list("leaf_index", flat=True)) == list(
        range(23)
    )
    expected = InmemoryTree.init_from_entries(logged_leaf_bytes())
    key = verifier.parse_verifier_key(hub_verifier_key())
    for checkpoint in Checkpoint.objects.all():
        signed = verifier.verify_checkpoint(checkpoint.note, key)
        assert (
            signed.root_hash == bytes(checkpoint.root_hash) == expected.get_root(signed.tree_size)
        )
    assert sequence_pending(batch_size=5) == 0
    assert Checkpoint.objects.count() == 5  # nothing new, nothing signed


@pytest.mark.django_db
def test_stored_levels_hold_every_complete_subtree_and_serve_valid_proofs():
    record(13)
    sequence_pending(batch_size=4)
    record(8, start=13)
    sequence_pending(batch_size=3)
    size = 21
    data = logged_leaf_bytes()
    stored = {(n.level, n.index): bytes(n.hash) for n in MerkleNode.objects.all()}
    expected_keys = {(level, index) for level in range(6) for index in range(size >> level)}
    assert set(stored) == expected_keys
    tree = InmemoryTree.init_from_entries(data)
    for index in range(size):
        proof = selectors.inclusion_proof(leaf_index=index, tree_size=size)
        verifier.verify_inclusion(
            index, size, merkle.leaf_hash(data[index]), proof.inclusion_path, tree.get_root()
        )
        assert tree.prove_inclusion(index + 1, size).path[1:] == proof.inclusion_path
    for first in range(1, size + 1):
        proof = selectors.consistency_proof(first=first, second=size)
        verifier.verify_consistency(
            first, size, tree.get_root(first), tree.get_root(), proof.consistency_path
        )


@pytest.mark.django_db
def test_a_tampered_stored_node_the_new_tree_builds_on_stops_signing():
    record(6)
    sequence_pending()
    # leaves [0, 4): a node on the old tree's right border, which the new tree is built from
    with as_superuser_bypassing_triggers():
        MerkleNode.objects.filter(level=2, index=0).update(hash=b"\x00" * 32)
    record(3, start=6)
    with pytest.raises(LogInconsistent):
        sequence_pending()
    assert selectors.latest_checkpoint().tree_size == 6
    assert AuditEvent.objects.filter(leaf_index__isnull=True).count() == 3  # rolled back


@pytest.mark.django_db
def test_a_checkpoint_root_the_stored_tree_does_not_extend_stops_signing():
    record(5)
    sequence_pending()
    with as_superuser_bypassing_triggers():
        Checkpoint.objects.filter(tree_size=5).update(root_hash=merkle.leaf_hash(b"forged"))
    record(1, start=5)
    with pytest.raises(LogInconsistent, match="not consistent"):
        sequence_pending()
    assert not Checkpoint.objects.filter(tree_size=6).exists()


@pytest.mark.django_db
def test_a_tree_size_that_disagrees_with_the_latest_checkpoint_stops_signing():
    record(4)
    sequence_pending()
    with as_superuser_bypassing_triggers():
        Checkpoint.objects.filter(tree_size=4).delete()
    record(1, start=4)
    with pytest.raises(LogInconsistent, match="stored tree has 4 leaves"):
        sequence_pending()


def _race(threads: int, batch_size: int) -> list:
    barrier = threading.Barrier(threads)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(sequence_pending(batch_size=batch_size))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_sequencers_never_assign_a_leaf_twice():
    record(400)
    for _ in range(3):
        _race(threads=4, batch_size=37)
        sequence_pending(batch_size=37)  # whatever a lock-losing run left
    leaf_indexes = list(AuditEvent.objects.values_list("leaf_index", flat=True))
    assert sorted(leaf_indexes) == list(range(400))
    sizes = list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", flat=True))
    assert len(sizes) == len(set(sizes)) and sizes[-1] == 400
    tree = InmemoryTree.init_from_entries(logged_leaf_bytes())
    for checkpoint in Checkpoint.objects.all():
        assert bytes(checkpoint.root_hash) == tree.get_root(checkpoint.tree_size)


@pytest.mark.django_db(transaction=True)
def test_sequencers_racing_writers_log_every_committed_event_exactly_once():
    stop = threading.Event()
    errors = []

    def writer(offset):
        try:
            for round_ in range(20):
                record(7, start=offset * 1000 + round_ * 7)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def sequencer():
        try:
            while not stop.is_set():
                sequence_pending(batch_size=11)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    sequencers = [threading.Thread(target=sequencer) for _ in range(2)]
    for thread in writers + sequencers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in sequencers:
        thread.join()
    assert not errors, errors
    sequence_pending()
    assert sorted(AuditEvent.objects.values_list("leaf_index", flat=True)) == list(range(420))
    tree = InmemoryTree.init_from_entries(logged_leaf_bytes())
    assert bytes(selectors.latest_checkpoint().root_hash) == tree.get_root()


def test_sqlite_is_not_in_use_here():
    assert connection.vendor == "postgresql"  # the lock and bulk paths under test are PostgreSQL's


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
@pytest.mark.parametrize("statistics", ["none", "of a tiny table"])
def test_a_batch_reads_and_updates_only_its_own_rows_whatever_the_statistics(statistics):
    # A backlog bulk-loaded before any ANALYZE, or after one of a tiny table: the statistics say
    # next to nothing is pending. Each batch must still read its events from the partial index
    # in id order and find each by its key, never fetch, sort, hash or loop over the whole
    # backlog (quadratic time over a large backlog).
    record(3000)
    with connection.cursor() as cursor:
        if statistics != "none":
            # What an ANALYZE of the table at 5 rows leaves (set here in the test's transaction,
            # which puts it back: an ANALYZE's own row count would outlive it).
            cursor.execute(
                "UPDATE pg_class SET reltuples = 5, relpages = 1 WHERE oid = %s::regclass",
                [AuditEvent._meta.db_table],
            )
        cursor.execute(sequencer.BATCH_PLANS)
    select = _plan(sequencer.UNSEQUENCED_SQL, [100])
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True)[:100])
    update = _plan(sequencer.ASSIGN_SQL, [0, bigint_array(ids)])
    opening = _plan(sequencer.LOG_STATE_SQL, [])

    assert "auditevent_unsequenced" in select
    assert "federation_auditevent_pkey" in update
    assert "auditevent_leaf_index_unique" in opening and "Seq Scan" not in opening, opening
    for plan in (select, update, opening):
        assert "Bitmap" not in plan and "Sort" not in plan and "Hash" not in plan, plan
    # Each event found by its key: no join whose filter compares every pair of rows.
    assert "Nested Loop" not in update and "Join Filter" not in update, update
    assert "Index Cond" in update, update


@pytest.mark.django_db
def test_the_leaves_the_sequencer_hashes_are_the_documented_leaf_bytes():
    # The sequencer reads raw rows (occurred_at formatted by PostgreSQL for four-digit years, by
    # Python otherwise); its leaves must hash exactly event_leaf_bytes of the stored events.
    moments = [
        datetime(2026, 12, 2, 1, 2, 3, 4, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(999, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    for moment in moments:
        audit_record_many(
            [AuditRecord(action="test.event", actor=ACTOR, data={"é": ["ü", 1, None, 2.5]})],
            occurred_at=moment,
        )
    sequence_pending()

    events = AuditEvent.objects.order_by("leaf_index")
    stored = selectors.read_nodes({(0, event.leaf_index) for event in events})
    for event in events:
        assert stored[(0, event.leaf_index)] == merkle.leaf_hash(event_leaf_bytes(event))
    assert b'"occurred_at":"0999-05-06' not in event_leaf_bytes(events[2])


# jsonb values as PostgreSQL writes their text: orjson must decode them as json.loads does
# (the JSONField's decoding), or hand them to json.loads.
AWKWARD_DATA = [
    {"n": 1, "labels": ["a", "b"], "nested": {"x": [None, True, False, {}]}},
    {"big": 2**53 - 1, "beyond JCS": 2**53, "beyond 64 bits": 2**70, "negative": -(2**63)},
    {"floats": [0.1, 2.5, 1e21, 1e-7, -0.0, 123456789.123456789]},
    {"long decimal": 1.00000000000000000001},
    {"\ue000 key": 1, "𝄞": "𝄞", "é": "ü", "control": '\u0001\u001f"\\/\n'},
    {"deep": [[[[[[[[[[[[[[[[[[[[{"a": 1}]]]]]]]]]]]]]]]]]]]]},
    {"deeper": json.loads("[" * 900 + "]" * 900)},
    [],
    "text",
    7,
]


@pytest.mark.django_db
@pytest.mark.parametrize("value", AWKWARD_DATA, ids=range(len(AWKWARD_DATA)))
def test_the_sequencer_decodes_event_data_as_the_json_field_does(value):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [json.dumps(value)])
        (text,) = cursor.fetchone()

    data, checked = sequencer._decoded(text)

    assert repr(data) == repr(json.loads(text))  # the same values and types, in the same order
    assert checked == canonical.in_fast_domain(data)


@pytest.mark.django_db
def test_leaves_of_data_outside_the_fast_domain_are_the_documented_leaf_bytes():
    for data in (
        {"n": 1, "labels": ["a"], "ok": True, "none": None},
        {"big": 2**53 - 1, "negative": -(2**53 - 1)},
        {"floats": [0.1, 2.5, 1e-7, -0.0], "long decimal": 1.00000000000000000001},
        {"\ue000 key": 1, "𝄞": "𝄞", "control": '\u0001\u001f"\\/\n'},
    ):
        audit_record_many([AuditRecord(action="test.event", actor=ACTOR, data=data)])
    sequence_pending()

    events = AuditEvent.objects.order_by("leaf_index")
    stored = selectors.read_nodes({(0, event.leaf_index) for event in events})
    for event in events:
        assert stored[(0, event.leaf_index)] == merkle.leaf_hash(event_leaf_bytes(event))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "write",
    [
        lambda record_: audit_record(record_),
        lambda record_: audit_record_many([record_]),
        lambda record_: audit_record_for_ids(
            action=record_.action,
            actor=record_.actor,
            organisation="",
            object_type="thing",
            object_ids=[1],
            data=record_.data,
            occurred_at=timezone.now(),
        ),
    ],
    ids=["one", "many", "for ids"],
)
def test_data_beyond_rfc_8785_is_stored_as_text_so_that_the_log_goes_on(write):
    """The leaf's encoder refuses an integer beyond ±(2^53 - 1) and a float that is not finite,
    and the sequencer cannot pass over an event: each writer stores such a number as its
    decimal text, and keeps every other value as it is."""
    data = {
        "big": 2**60,
        "negative": -(2**53),
        "not finite": float("nan"),
        "nested": [{"n": 2**53, "fine": 2**53 - 1}, (1.5, float("inf"))],
        "kept": [True, None, "text", 0.25],
    }

    write(AuditRecord(action="test.event", actor=ACTOR, object_type="thing", data=data))

    assert AuditEvent.objects.get(action="test.event").data == {
        "big": "1152921504606846976",
        "negative": "-9007199254740992",
        "not finite": "nan",
        "nested": [{"n": "9007199254740992", "fine": 2**53 - 1}, [1.5, "inf"]],
        "kept": [True, None, "text", 0.25],
    }
    assert sequence_pending() == 1
    assert AuditEvent.objects.get(action="test.event").leaf_index == 0


@pytest.mark.django_db
def test_an_event_whose_leaf_cannot_be_written_is_named_in_a_refusal():
    """Written past the writers (raw SQL), such an event stops the log: the refusal names it."""
    record(2)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO federation_auditevent (occurred_at, action, actor_type, actor_id,"
            " actor_label, organisation, object_type, object_id, data)"
            " VALUES (now(), 'test.event', 'system', 'test', 'test', '', '', '',"
            " '{\"n\": 1152921504606846976}') RETURNING id"
        )
        (poisoned,) = cursor.fetchone()

    with pytest.raises(LogInconsistent, match=f"audit event {poisoned} has data whose leaf"):
        sequence_pending()

    status = SequencerStatus.objects.get(pk=1)
    assert status.state == SequencerStatus.State.REFUSED
    assert "IntegerDomainError" in status.reason
    assert not AuditEvent.objects.filter(leaf_index__isnull=False).exists()  # rolled back
    assert not Checkpoint.objects.exists()
