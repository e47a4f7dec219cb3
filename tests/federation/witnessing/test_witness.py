"""The hub as a witness (C2SP tlog-witness ``add-checkpoint``, tlog-cosignature): it cosigns a
witnessed log's checkpoints that extend what it cosigned, answers the spec's status codes for
everything else, keeps split-view evidence, and its cosignatures are what the spec defines
(checked by an implementation written here from the spec, and against the spec's example)."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from federation.canonical import canonical_json_bytes
from federation.transparency import merkle
from federation.transparency.actions import Action
from federation.transparency.audit import event_document
from federation.transparency.checkpoints import checkpoint_body, sign_note, verifier_key
from federation.transparency.cosignatures import witness_verifier_key
from federation.transparency.models import AuditEvent, SplitViewEvidence, WitnessedLog
from federation.witnessing.witness import witnessed_log_save
from members.actors import Actor
from tests.support.cosignatures import independent_cosignature_check

URL = "/api/v1/witness/add-checkpoint"
ORIGIN = "log.hub.test"


class Log:
    """A log of our own making: leaves, its key, checkpoints and consistency proofs."""

    def __init__(self, origin: str = ORIGIN, key: Ed25519PrivateKey | None = None) -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.leaves: list[bytes] = []

    @property
    def vkey(self) -> str:
        return verifier_key(self.origin, self.key.public_key().public_bytes_raw())

    def grow(self, count: int, tag: str = "") -> None:
        start = len(self.leaves)
        self.leaves += [
            merkle.leaf_hash(f"{tag}leaf {i}".encode()) for i in range(start, start + count)
        ]

    def nodes(self) -> dict:
        return merkle.new_nodes(old_size=0, leaf_hashes=self.leaves, frontier={})

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return merkle.range_hash(0, size, self.nodes()) if size else merkle.EMPTY_ROOT

    def checkpoint(self, size: int | None = None, *, key=None) -> str:
        size = len(self.leaves) if size is None else size
        body = checkpoint_body(origin=self.origin, tree_size=size, root_hash=self.root(size))
        return sign_note(body, name=self.origin, private_key=key or self.key)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.leaves) if new is None else new
        nodes = self.nodes()
        return merkle.proof_hashes(merkle.consistency_ranges(old, new), lambda keys: nodes)

    def body(self, old: int, *, proof: list[bytes] | None = None, note: str | None = None) -> bytes:
        proof = self.proof(old) if proof is None else proof
        lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
        return ("\n".join(lines) + "\n\n" + (note or self.checkpoint())).encode()


def note_text(note: str) -> str:
    return note[: note.index("\n\n") + 1]


@pytest.fixture
def log(db):
    log = Log()
    log.grow(5)
    witnessed_log_save(origin=log.origin, vkey=log.vkey, actor=Actor.system("cli"))
    return log


def post(client, body: bytes):
    return client.post(URL, data=body, content_type="text/plain")


def test_the_spec_example_cosignature_has_the_layout_we_write():
    """tlog-cosignature's example line: 4-byte key id, then the u64 time of its example signed
    message (1679315147), then 64 signature bytes."""
    example = (
        "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+"
        "mbIUBkBIfZ+qnA=="
    )
    blob = base64.b64decode(example)
    assert len(blob) == 76
    assert int.from_bytes(blob[4:12], "big") == 1679315147


def test_a_first_checkpoint_is_cosigned_stored_and_audited(client, log):
    response = post(client, log.body(0))
    assert response.status_code == 200, response.content
    line = response.content.decode()
    timestamp = independent_cosignature_check(
        line, note_text(log.checkpoint()), witness_verifier_key()
    )
    stored = WitnessedLog.objects.get(origin=ORIGIN)
    assert (stored.tree_size, bytes(stored.root_hash)) == (5, log.root())
    assert stored.checkpoint == log.checkpoint() + line
    event = AuditEvent.objects.filter(action=Action.CHECKPOINT_COSIGNED).get()
    assert (event.object_type, event.object_id) == ("witnessed_log", ORIGIN)
    assert event.data["tree_size"] == 5 and event.data["old_size"] == 0
    assert event.data["timestamp"] == timestamp and event.data["cosignature"] == line


def test_a_checkpoint_that_extends_the_cosigned_one_is_cosigned(client, log):
    assert post(client, log.body(0)).status_code == 200
    log.grow(6)
    response = post(client, log.body(5))
    assert response.status_code == 200, response.content
    independent_cosignature_check(
        response.content.decode(), note_text(log.checkpoint()), witness_verifier_key()
    )
    assert WitnessedLog.objects.get().tree_size == 11
    # The same checkpoint again (old size = its size) is cosigned again, with no proof.
    assert post(client, log.body(11)).status_code == 200


def test_an_old_size_other_than_the_cosigned_one_answers_409_with_the_size(client, log):
    assert post(client, log.body(0)).status_code == 200
    log.grow(3)
    response = post(client, log.body(0, proof=[]))
    assert response.status_code == 409
    assert response["Content-Type"] == "text/x.tlog.size"
    assert response.content == b"5\n"


def test_an_unknown_origin_is_404(client, log):
    other = Log(origin="other.hub.test")
    other.grow(2)
    response = post(client, other.body(0))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_origin"


def test_a_checkpoint_not_signed_by_the_logs_key_is_403(client, log):
    forged = log.checkpoint(key=Ed25519PrivateKey.generate())  # same name, another key
    response = post(client, log.body(0, note=forged))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_log_signature"
    # A signature line with the log's name and key id that does not verify is refused too.
    genuine = log.checkpoint()
    text, signature = genuine.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(signature))
    blob[-1] ^= 1
    tampered = f"{text} {base64.b64encode(bytes(blob)).decode()}\n"
    assert post(client, log.body(0, note=tampered)).status_code == 403
    assert WitnessedLog.objects.get().tree_size == 0


@pytest.mark.parametrize(
    "body",
    [
        b"old 01\n\nx",
        b"old 1\nnot base64!\n\n",
        b"old 5\n",
        "old 0\n\n\u2014 nothing\n".encode(),
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_are_400(client, log, body):
    assert post(client, body).status_code == 400


def test_an_old_size_beyond_the_checkpoint_is_400(client, log):
    response = post(client, log.body(9, proof=[]))
    assert response.status_code == 400


def test_a_tree_size_beyond_what_an_audit_leaf_holds_is_400_and_nothing_is_recorded(client, log):
    # The witness's events hold the sizes, and their leaves (RFC 8785) integers up to 2**53 - 1:
    # the log's key signs a larger size as readily, from size 0 with no proof to check.
    events = AuditEvent.objects.count()
    for size, status in ((2**53, 400), (2**63 + 1, 400), (2**53 - 1, 200)):
        body = checkpoint_body(origin=log.origin, tree_size=size, root_hash=b"\x01" * 32)
        note = sign_note(body, name=log.origin, private_key=log.key)
        response = post(client, log.body(0, proof=[], note=note))
        assert response.status_code == status, response.content
        if status == 400:
            assert b"tree size is over" in response.content
            assert AuditEvent.objects.count() == events
            assert WitnessedLog.objects.get(origin=log.origin).tree_size == 0
    assert WitnessedLog.objects.get(origin=log.origin).tree_size == 2**53 - 1
    event = AuditEvent.objects.latest("pk")
    assert canonical_json_bytes(event_document(event))  # a leaf the sequencer can write


def test_a_proof_from_size_zero_must_be_empty(client, log):
    response = post(client, log.body(0, proof=[b"\x00" * 32]))
    assert response.status_code == 422
    assert not SplitViewEvidence.objects.exists()


def test_an_empty_tree_has_the_empty_root(client, db):
    log = Log()
    witnessed_log_save(origin=log.origin, vkey=log.vkey, actor=Actor.system("cli"))
    body = checkpoint_body(origin=log.origin, tree_size=0, root_hash=b"\x01" * 32)
    note = sign_note(body, name=log.origin, private_key=log.key)
    assert post(client, log.body(0, proof=[], note=note)).status_code == 422


def test_two_roots_for_one_size_are_kept_as_evidence_and_the_log_is_refused(client, log):
    assert post(client, log.body(0)).status_code == 200
    cosigned = WitnessedLog.objects.get().checkpoint
    fork = Log(key=log.key)
    fork.grow(5, tag="forked ")
    response = post(client, fork.body(5, proof=[]))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "inconsistent"
    evidence = SplitViewEvidence.objects.get()
    assert evidence.kind == "same_size"
    assert (evidence.cosigned_note, evidence.shown_note) == (cosigned, fork.checkpoint())
    assert WitnessedLog.objects.get().state == "split_view"
    event = AuditEvent.objects.get(action=Action.CHECKPOINT_SPLIT_VIEW)
    assert event.data["evidence_id"] == evidence.pk
    assert event.data["shown_note"] == fork.checkpoint()
    # Refused from now on, even the honest history.
    log.grow(1)
    refused = post(client, log.body(5))
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "split_view")
    served = client.get("/api/v1/witness/evidence").json()
    assert served["witness"] == witness_verifier_key()
    assert [item["kind"] for item in served["evidence"]] == ["same_size"]


def test_a_bogus_proof_with_the_logs_genuine_checkpoint_is_refused_and_changes_nothing(client, log):
    """Anyone can post the log's honest newer checkpoint with a proof of their own making: the
    failing proof is the caller's, so it is refused, kept nowhere, and the log stays witnessed."""
    assert post(client, log.body(0)).status_code == 200
    log.grow(3)
    events_before = AuditEvent.objects.count()
    response = post(client, log.body(5, proof=[b"\x07" * 32] * 3))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "inconsistent"
    assert not SplitViewEvidence.objects.exists()
    stored = WitnessedLog.objects.get()
    assert (stored.state, stored.tree_size) == ("active", 5)
    assert AuditEvent.objects.count() == events_before
    # The log's own request, with the real proof, is still cosigned.
    assert post(client, log.body(5)).status_code == 200
    assert WitnessedLog.objects.get().tree_size == 8


def test_a_forks_failing_proof_is_refused_without_evidence(client, log):
    """Two checkpoints of different sizes with no proof between them are not, by themselves,
    evidence: the witness cannot tell a forked log from a caller's bad proof. It refuses."""
    assert post(client, log.body(0)).status_code == 200
    fork = Log(key=log.key)
    fork.grow(8, tag="forked ")
    response = post(client, fork.body(5))  # the fork's own proof, from its own size 5
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "inconsistent"
    assert not SplitViewEvidence.objects.exists()
    stored = WitnessedLog.objects.get()
    assert (stored.state, stored.tree_size) == ("active", 5)  # what it had cosigned stays


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/x-www-form-urlencoded", "text/plain; charset=latin-1"],
)
def test_a_body_that_is_not_utf8_text_is_415(client, log, content_type):
    response = client.generic("POST", URL, log.body(0), CONTENT_TYPE=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert WitnessedLog.objects.get().tree_size == 0


@pytest.mark.parametrize("content_type", ["text/plain", "Text/Plain; charset=UTF-8", ""])
def test_text_plain_or_no_content_type_is_accepted(client, log, content_type):
    response = client.generic("POST", URL, log.body(0), CONTENT_TYPE=content_type)
    assert response.status_code == 200, response.content


def test_the_monitoring_endpoint_serves_the_cosigned_checkpoint(client, log):
    path = f"/api/v1/witness/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"
    assert client.get(path).status_code == 404
    line = post(client, log.body(0)).content.decode()
    response = client.get(path)
    assert response.status_code == 200
    assert response.content.decode() == log.checkpoint() + line


def test_the_witness_key_is_public_and_type_4(client, db):
    body = client.get("/api/v1/witness/key").json()
    assert body["name"] == settings.WITNESS_NAME
    assert base64.b64decode(body["vkey"].split("+", 2)[2])[0] == 0x04


def test_the_admin_raises_an_alert_while_evidence_is_held(client, log, consortium_admin):
    from django.test import Client

    admin = Client()
    admin.force_login(consortium_admin.user)
    assert "concordat-split-view-alert" not in admin.get("/admin/").content.decode()
    assert post(client, log.body(0)).status_code == 200
    fork = Log(key=log.key)
    fork.grow(5, tag="forked ")
    assert post(client, fork.body(5, proof=[])).status_code == 422
    page = admin.get("/admin/").content.decode()
    assert "concordat-split-view-alert" in page and ORIGIN in page
    listing = admin.get("/admin/federation/splitviewevidence/")
    assert listing.status_code == 200
    assert "A witnessed log showed two histories" in listing.content.decode()
    assert admin.get("/admin/federation/witnessedlog/").status_code == 200
    assert admin.get("/admin/federation/witness/").status_code == 200


def test_the_commands_list_what_is_configured(log):
    import io
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("witnessed_logs", "list", stdout=out)
    [listed] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (listed["origin"], listed["state"], listed["tree_size"]) == (ORIGIN, "active", 0)
    out = io.StringIO()
    call_command("witnessed_logs", "key", stdout=out)
    assert out.getvalue().strip() == witness_verifier_key()
    out = io.StringIO()
    call_command("hub_witnesses", "list", stdout=out)
    assert out.getvalue() == ""


def test_an_operator_can_resume_a_log_held_in_split_view(client, log, consortium_admin):
    import io

    from django.core.management import CommandError, call_command
    from django.test import Client

    assert post(client, log.body(0)).status_code == 200
    fork = Log(key=log.key)
    fork.grow(5, tag="forked ")
    assert post(client, fork.body(5, proof=[])).status_code == 422
    assert WitnessedLog.objects.get().state == "split_view"
    with pytest.raises(CommandError, match="reason"):
        call_command("witnessed_logs", "resume", "--origin", ORIGIN, "--reason", " ")
    call_command(
        "witnessed_logs", "resume", "--origin", ORIGIN, "--reason", "checked", stdout=io.StringIO()
    )
    stored = WitnessedLog.objects.get()
    assert (stored.state, stored.tree_size) == ("active", 5)
    evidence = SplitViewEvidence.objects.get()  # kept, and still served
    event = AuditEvent.objects.get(action=Action.WITNESSED_LOG_RESUMED)
    assert (event.object_type, event.object_id) == ("witnessed_log", ORIGIN)
    assert event.data["reason"] == "checked"
    assert event.data["evidence"] == [{"evidence_id": evidence.pk, "kind": "same_size"}]
    admin = Client()
    admin.force_login(consortium_admin.user)
    assert "concordat-split-view-alert" not in admin.get("/admin/").content.decode()
    log.grow(2)
    assert post(client, log.body(5)).status_code == 200  # from the checkpoint it had cosigned
    with pytest.raises(CommandError, match="not held in split view"):
        call_command("witnessed_logs", "resume", "--origin", ORIGIN, "--reason", "again")
