"""Collecting cosignatures over real HTTP: the hub asks a witness (its own witness role, served by
Django's live server, witnessing the hub's own origin) to cosign its latest checkpoint, stores
the cosignature, follows a 409 to the size the witness holds, skips checkpoints that add only
cosigning records, and records an unreachable or refusing witness on its row."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.checkpoints import hub_verifier_key
from federation.transparency.cosignatures import cosigner_verifier_key, witness_verifier_key
from federation.transparency.cosigning import (
    WitnessRefused,
    WitnessUnavailable,
    cosignatures_collect,
    witness_save,
)
from federation.transparency.models import Checkpoint, Cosignature, Witness, WitnessedLog
from federation.transparency.sequencer import sequence_pending
from federation.witnessing.witness import witnessed_log_save
from members.actors import Actor
from tests.support.cosignatures import independent_cosignature_check

CLI = Actor.system("cli")


def record(count: int, action: str = "test.event") -> Checkpoint:
    audit_record_many(
        AuditRecord(action=action, actor=Actor.system("test"), object_id=str(i), data={"n": i})
        for i in range(count)
    )
    sequence_pending()
    return Checkpoint.objects.order_by("-tree_size").first()


@pytest.fixture
def witness(transactional_db, live_server):
    witnessed_log_save(origin=settings.HUB_ID, vkey=hub_verifier_key(), actor=CLI)
    vkey = witness_verifier_key()
    row, _ = witness_save(
        name=vkey.split("+", 1)[0], vkey=vkey, url=live_server.url + "/api/v1/witness", actor=CLI
    )
    return row


def test_the_latest_checkpoint_is_cosigned_and_stored(witness):
    checkpoint = record(3)
    outcome = cosignatures_collect(witness_id=witness.pk)
    assert (outcome.result, outcome.tree_size) == ("cosigned", checkpoint.tree_size)
    cosignature = Cosignature.objects.get(witness=witness)
    text = checkpoint.note[: checkpoint.note.index("\n\n") + 1]
    independent_cosignature_check(cosignature.line, text, witness_verifier_key())
    assert Witness.objects.get(pk=witness.pk).tree_size == checkpoint.tree_size
    assert cosignatures_collect(witness_id=witness.pk).result == "up_to_date"


def test_a_checkpoint_of_only_cosigning_records_is_not_sent(witness):
    record(3)
    cosignatures_collect(witness_id=witness.pk)
    # The witness's own cosigning record was one such leaf; add more, nothing else.
    record(2, action=Action.CHECKPOINT_COSIGNED)
    assert cosignatures_collect(witness_id=witness.pk).result == "nothing_new"
    checkpoint = record(1)
    assert cosignatures_collect(witness_id=witness.pk).result == "cosigned"
    assert Witness.objects.get(pk=witness.pk).tree_size == checkpoint.tree_size


def test_a_409_moves_to_the_size_the_witness_holds(witness):
    first = record(3)
    cosignatures_collect(witness_id=witness.pk)
    record(4)
    # This hub lost track of what the witness holds: the witness says, and it asks again.
    Witness.objects.filter(pk=witness.pk).update(tree_size=1)
    outcome = cosignatures_collect(witness_id=witness.pk)
    assert outcome.result == "cosigned"
    log = WitnessedLog.objects.get(origin=settings.HUB_ID)
    assert log.tree_size == outcome.tree_size > first.tree_size


def test_an_unreachable_witness_is_recorded_for_a_retry(transactional_db):
    vkey = cosigner_verifier_key(
        "w.test", Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    row, _ = witness_save(name="w.test", vkey=vkey, url="http://127.0.0.1:9/w", actor=CLI)
    record(2)
    with pytest.raises(WitnessUnavailable):
        cosignatures_collect(witness_id=row.pk)
    row.refresh_from_db()
    assert row.last_error and row.last_attempt_at and row.tree_size == 0


def test_a_witness_that_does_not_know_this_log_refuses(transactional_db, live_server):
    vkey = witness_verifier_key()
    row, _ = witness_save(
        name=vkey.split("+", 1)[0], vkey=vkey, url=live_server.url + "/api/v1/witness", actor=CLI
    )
    record(2)
    with pytest.raises(WitnessRefused, match="404"):
        cosignatures_collect(witness_id=row.pk)
    assert "unknown_origin" in Witness.objects.get(pk=row.pk).last_error


def test_the_hub_serves_its_checkpoint_with_the_cosignatures(witness, auditor):
    checkpoint = record(3)
    cosignatures_collect(witness_id=witness.pk)
    record(1, action=Action.CHECKPOINT_COSIGNED)  # a newer checkpoint, not cosigned
    note = auditor.client.get("/api/v1/log/checkpoint/cosigned").content.decode()
    line = Cosignature.objects.get().line
    assert note == checkpoint.note + line
