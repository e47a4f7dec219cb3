"""The verifier's witness policy, in-process against the real API: k of n trusted cosignatures on
the hub's newest cosigned checkpoint, cosignatures by other keys ignored, a bad one refused,
changes outside the witnessed tree caught; an auditor cosigning as its own witness; the
split-view evidence check. Cosignatures are made with witness keys held by the test and stored
as the collecting task stores them."""

import base64
import io
import json
import re
import time
from datetime import timedelta

import pytest
from concordat_client import crosscheck, verifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from federation.hubkey import hub_private_key
from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.checkpoints import checkpoint_body, hub_verifier_key, sign_note
from federation.transparency.cosignatures import cosign, cosigner_verifier_key
from federation.transparency.cosigning import witness_save
from federation.transparency.models import Checkpoint, Cosignature
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.cosignatures import independent_cosignature_check
from tests.support.verifier_hub import InProcessHub

ACTOR = Actor.system("test")


class HeldWitness:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.vkey = cosigner_verifier_key(name, self.key.public_key().public_bytes_raw())
        self.row, _ = witness_save(
            name=name, vkey=self.vkey, url="http://127.0.0.1:9/w", actor=Actor.system("cli")
        )

    def cosign(self, checkpoint: Checkpoint, *, timestamp: int | None = None) -> Cosignature:
        text = checkpoint.note[: checkpoint.note.index("\n\n") + 1]
        timestamp = timestamp or int(time.time())
        line = cosign(text, timestamp=timestamp, name=self.name, private_key=self.key)
        return Cosignature.objects.create(
            checkpoint=checkpoint, witness=self.row, line=line, timestamp=timestamp
        )


def record(count: int, action: str = "test.event") -> Checkpoint:
    audit_record_many(
        AuditRecord(action=action, actor=ACTOR, object_id=str(i), data={"n": i})
        for i in range(count)
    )
    sequence_pending()
    return Checkpoint.objects.order_by("-tree_size").first()


def verify(hub, tmp_path, witnesses, **options) -> tuple[int, str]:
    out = io.StringIO()
    options.setdefault("state_dir", tmp_path / "state")
    code = verifier.run(
        hub="http://hub.test",
        vkey=hub_verifier_key(),
        token=None,
        out=out,
        client=hub,
        witnesses=[w.vkey for w in witnesses],
        **options,
    )
    return code, out.getvalue()


@pytest.fixture
def hub(auditor):
    return InProcessHub(auditor.client)


@pytest.fixture
def witnesses(db):
    return HeldWitness("b.hub.test/witness"), HeldWitness("c.hub.test/witness")


def test_two_of_two_cosignatures_meet_the_policy(hub, tmp_path, witnesses):
    checkpoint = record(3)
    for witness in witnesses:
        witness.cosign(checkpoint)
    code, out = verify(hub, tmp_path, witnesses)
    assert code == 0, out
    assert "witness policy: 2 of 2 (b.hub.test/witness, c.hub.test/witness)" in out
    assert f"OK    witness b.hub.test/witness cosigned tree size {checkpoint.tree_size}" in out
    assert "OK    witness policy met: 2 of the 2 trusted witnesses cosigned" in out


def test_a_missing_cosignature_fails_the_policy_and_a_lower_threshold_passes(
    hub, tmp_path, witnesses
):
    checkpoint = record(3)
    witnesses[0].cosign(checkpoint)
    code, out = verify(hub, tmp_path, witnesses)
    assert code == 1
    assert "FAIL  witness policy not met: 1 of the 2 trusted witnesses cosigned" in out
    assert "NOTE  witness c.hub.test/witness has not cosigned" in out
    code, out = verify(hub, tmp_path, witnesses, threshold=1)
    assert code == 0, out


def test_a_cosignature_by_a_key_outside_the_policy_is_ignored(hub, tmp_path, witnesses):
    checkpoint = record(3)
    witnesses[0].cosign(checkpoint)
    impostor = HeldWitness("rogue.hub.test/witness")
    impostor.cosign(checkpoint)
    # Trusting a key with the impostor's name but another key: its line counts for nothing.
    trusted = HeldWitness("rogue.hub.test/other")
    trusted.vkey = cosigner_verifier_key(
        "rogue.hub.test/witness", Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    code, out = verify(hub, tmp_path, [witnesses[0], trusted])
    assert code == 1
    assert "ignored 1 cosignatures by keys not in the policy" in out
    assert "1 of the 2 trusted witnesses" in out


def test_a_trusted_cosignature_that_does_not_verify_fails(hub, tmp_path, witnesses):
    checkpoint = record(3)
    cosignature = witnesses[0].cosign(checkpoint)
    name, blob = cosignature.line[2:-1].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    Cosignature.objects.filter(pk=cosignature.pk).update(
        line=f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    )
    witnesses[1].cosign(checkpoint)
    code, out = verify(hub, tmp_path, witnesses)
    assert code == 1
    assert "FAIL  the cosignature by b.hub.test/witness does not verify" in out


def test_changes_outside_the_witnessed_tree_fail_after_the_grace(hub, tmp_path, witnesses):
    checkpoint = record(3)
    for witness in witnesses:
        witness.cosign(checkpoint)
    # The hub's own cosigning records after it need no witnessing.
    record(2, action=Action.CHECKPOINT_COSIGNED)
    code, out = verify(hub, tmp_path, witnesses)
    assert code == 0, out
    assert f"witnessed size {checkpoint.tree_size}" in out
    # Any other change does: a warning while it is new, a failure after the grace.
    record(1)
    code, out = verify(hub, tmp_path / "b", witnesses)
    assert code == 3, out
    assert "hold changes no witness cosigned" in out
    code, out = verify(hub, tmp_path / "c", witnesses, witness_grace=0)
    assert code == 1, out


def test_an_auditor_cosigns_what_it_verified(hub, tmp_path, witnesses):
    record(3)
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "auditor-key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    code, out = verify(hub, tmp_path, [], cosign_key=pem, cosigner_name="auditor.example/w")
    assert code == 0, out
    [saved] = [json.loads(line) for line in (tmp_path / "state" / "cosigned.jsonl").open()]
    note = saved["note"]
    text, block = note[: note.index("\n\n") + 1], note[note.index("\n\n") + 2 :]
    line = block.split("\n")[1] + "\n"
    independent_cosignature_check(line, text, saved["witness"])
    assert saved["witness"] == verifier.witness_vkey(key, "auditor.example/w")


def test_the_evidence_check_shows_a_split_view(db, hub):
    origin = hub_verifier_key().split("+", 1)[0]
    notes = [
        sign_note(
            checkpoint_body(origin=origin, tree_size=4, root_hash=bytes([n]) * 32),
            name=origin,
            private_key=hub_private_key(),
        )
        for n in (1, 2)
    ]
    document = {
        "evidence": [
            {
                "id": 1,
                "origin": origin,
                "kind": "same_size",
                "detected_at": "now",
                "cosigned_note": notes[0],
                "shown_note": notes[1],
                "proof": [],
            }
        ]
    }
    out = io.StringIO()
    assert crosscheck.evidence(document=document, vkey=hub_verifier_key(), out=out) == 1
    assert "SPLIT VIEW: the log signed two roots for tree size 4" in out.getvalue()
    forged = Ed25519PrivateKey.generate()
    document["evidence"][0]["shown_note"] = sign_note(
        checkpoint_body(origin=origin, tree_size=4, root_hash=b"\x03" * 32),
        name=origin,
        private_key=forged,
    )
    out = io.StringIO()
    assert crosscheck.evidence(document=document, vkey=hub_verifier_key(), out=out) == 2
    assert "not evidence" in out.getvalue()
    out = io.StringIO()
    assert crosscheck.evidence(document={"evidence": []}, vkey=hub_verifier_key(), out=out) == 0


def test_the_grace_counts_from_the_oldest_change_outside_the_witnessed_tree(
    hub, tmp_path, witnesses
):
    """Later events make new checkpoints: the grace must not restart with each of them."""
    checkpoint = record(3)
    for witness in witnesses:
        witness.cosign(checkpoint)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    audit_record_many(
        [AuditRecord(action="test.event", actor=ACTOR, object_id="old", data={})],
        occurred_at=an_hour_ago,
    )
    record(1)  # a fresh checkpoint, signed now
    code, out = verify(hub, tmp_path, witnesses)
    assert code == 1, out
    assert re.search(rf"the oldest of them \(leaf {checkpoint.tree_size}\) is 36\d\d s old", out)
    code, out = verify(hub, tmp_path / "b", witnesses, witness_grace=7200)
    assert code == 3, out
    assert "within the grace" in out


def test_the_newest_checkpoint_that_meets_the_policy_is_judged(hub, tmp_path, db):
    """Witnesses being switched off: the newest cosigned checkpoint has one cosignature, an
    older one three; a 2-of-3 policy is met by the older one."""
    trio = [HeldWitness(f"{name}.hub.test/witness") for name in ("b", "c", "d")]
    older = record(3)
    for witness in trio:
        witness.cosign(older)
    newer = record(1)
    trio[0].cosign(newer)
    code, out = verify(hub, tmp_path, trio, threshold=2)
    assert code == 3, out  # the newest change waits for its cosignatures, within the grace
    assert f"witness d.hub.test/witness cosigned tree size {older.tree_size}" in out
    assert "witness policy met: 3 of the 3 trusted witnesses cosigned" in out
    code, out = verify(hub, tmp_path / "b", trio, threshold=3, witness_grace=0)
    assert code == 1, out


def test_the_cosigned_checkpoint_asked_for_by_witnesses_and_threshold(hub, db):
    trio = [HeldWitness(f"{name}.hub.test/witness") for name in ("b", "c", "d")]
    older = record(3)
    for witness in trio:
        witness.cosign(older)
    newer = record(1)
    trio[0].cosign(newer)
    names = [witness.name for witness in trio]
    served = hub.client.get("/api/v1/log/checkpoint/cosigned").content.decode()
    assert served.startswith(newer.note)
    served = hub.client.get(
        "/api/v1/log/checkpoint/cosigned", {"witness": names, "threshold": 2}
    ).content.decode()
    assert served.startswith(older.note) and served.count("\u2014 ") == 4
    served = hub.client.get(
        "/api/v1/log/checkpoint/cosigned", {"witness": names[:1], "threshold": 1}
    ).content.decode()
    assert served.startswith(newer.note)
    for params in ({"witness": names, "threshold": 4}, {"witness": names, "threshold": 0}):
        response = hub.client.get("/api/v1/log/checkpoint/cosigned", params)
        assert response.status_code == 400
        assert response.json()["error"]["details"]["parameter"] == "threshold"
