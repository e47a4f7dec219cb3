"""Key bindings in the log and the standalone verifier (docs/transparency.md, "The standalone
verifier"; docs/federation.md, "What is stored"): a receiving hub logs a foreign key with everything
that proves it (``key.received``: the home hub's binding and pinned key, the member's signed
registration), a sending hub logs each binding it signs (``key.bound``), and the verifier proves a
relayed contribution's member signature from the receiver's log alone."""

import base64
import hashlib
import io
import json
from datetime import timedelta

import pytest
from concordat_client import verifier
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.canonical import canonical_bytes
from federation.propagation.bindings import key_bindings_for
from federation.propagation.peers import peer_rotate_key
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.checkpoints import hub_verifier_key
from federation.transparency.models import AuditEvent
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from members.models import SigningKey
from members.services import signing_key_revoke
from tests.support.federation import RemoteHub, b64, contribution_item
from tests.support.parties import raw_public_key

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


class InProcessHub(verifier.HubClient):
    """The verifier's hub client over Django's test client (an auditor's)."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, path: str, **params) -> bytes:
        response = self.client.get("/api/v1/log" + path, params)
        if response.status_code != 200:
            raise verifier.HubError(f"GET {path} answered {response.status_code}")
        return response.content


@pytest.fixture
def hub(auditor):
    return InProcessHub(auditor.client)


@pytest.fixture
def bravo(db):
    """A linked peer whose pinned key the log records: its key is rotated to the one it signs
    with, through the service (``peer.key_rotated``)."""
    remote = RemoteHub("bravo.example")
    signing = Ed25519PrivateKey.generate()
    peer_rotate_key(
        peer=remote.peer, public_key=raw_public_key(signing), reason="test", actor=ACTOR
    )
    remote.private_key = signing
    remote.peer.refresh_from_db()
    return remote


def verify(hub, tmp_path) -> tuple[int, str]:
    sequence_pending()
    out = io.StringIO()
    code = verifier.run(
        hub="http://hub.test",
        vkey=hub_verifier_key(),
        token=None,
        out=out,
        client=hub,
        state_dir=tmp_path / "state",
    )
    return code, out.getvalue()


def received_event(member, *, hub_key: bytes, binding_signer=None, **changes) -> AuditRecord:
    """A ``key.received`` event for ``member`` as a (possibly dishonest) hub would log it."""
    section = member.key_section(signer=binding_signer)
    data = {
        Key.HUB: member.hub.hub_id,
        Key.MEMBER: member.slug,
        Key.KEY_ID: member.key_id,
        Key.BINDING: canonical_bytes(section["binding"]).decode(),
        Key.BINDING_SIGNATURE: section["binding_signature"],
        Key.HUB_PUBLIC_KEY: b64(hub_key),
        Key.PUBLIC_KEY: member.registration["public_key"],
        Key.REGISTRATION: canonical_bytes(member.registration).decode(),
        Key.REGISTRATION_SIGNATURE: member.registration_signature,
        Key.PEER: member.hub.hub_id,
        **changes,
    }
    return AuditRecord(
        action=Action.KEY_RECEIVED,
        actor=ACTOR,
        organisation=member.slug,
        object_type=ObjectType.SIGNING_KEY,
        object_id=member.key_id,
        data={name: value for name, value in data.items() if value is not None},
    )


# --- the receiving hub --------------------------------------------------------------------------


def test_key_received_logs_the_registration_and_the_home_hubs_pinned_key(bravo):
    member = bravo.member("acme")
    response = bravo.push([contribution_item(member)])
    assert response.status_code == 200 and response.json()["accepted"] == 1
    (event,) = AuditEvent.objects.filter(action=Action.KEY_RECEIVED)
    assert event.data[Key.PUBLIC_KEY] == member.registration["public_key"]
    assert event.data[Key.REGISTRATION] == canonical_bytes(member.registration).decode()
    assert event.data[Key.REGISTRATION_SIGNATURE] == member.registration_signature
    assert event.data[Key.HUB_PUBLIC_KEY] == b64(bravo.peer.public_key_bytes)


def test_a_relayed_contribution_is_proven_from_the_receivers_log(bravo, hub, tmp_path):
    member = bravo.member("acme")
    items = [contribution_item(member) for _ in range(2)]
    assert bravo.push(items).json()["accepted"] == 2
    code, output = verify(hub, tmp_path)
    assert code == 0, output
    assert "OK    1 key bindings (key.received, key.bound)" in output
    assert "OK    2 accepted contributions" in output


def test_a_binding_by_a_key_the_log_never_pinned_fails(bravo, hub, tmp_path):
    member = bravo.member("acme")
    rogue = Ed25519PrivateKey.generate()
    audit_record_many([received_event(member, hub_key=raw_public_key(rogue), binding_signer=rogue)])
    code, output = verify(hub, tmp_path)
    assert code == 1
    assert f"is not the key {bravo.peer.key_id} pinned for 'bravo.example'" in output


def test_a_binding_whose_signature_does_not_verify_fails(bravo, hub, tmp_path):
    member = bravo.member("acme")
    rogue = Ed25519PrivateKey.generate()
    event = received_event(member, hub_key=bravo.peer.public_key_bytes, binding_signer=rogue)
    audit_record_many([event])
    code, output = verify(hub, tmp_path)
    assert code == 1
    assert "the binding's signature does not verify under 'bravo.example''s pinned key" in output


def test_a_registration_the_key_did_not_sign_fails(bravo, hub, tmp_path):
    member = bravo.member("acme")
    forged = base64.b64encode(Ed25519PrivateKey.generate().sign(b"x")).decode()
    event = received_event(
        member, hub_key=bravo.peer.public_key_bytes, **{Key.REGISTRATION_SIGNATURE: forged}
    )
    audit_record_many([event])
    code, output = verify(hub, tmp_path)
    assert code == 1 and "the registration's self-signature does not verify" in output


def test_a_key_received_from_a_hub_the_log_never_registered_fails(hub, tmp_path, db):
    stranger = RemoteHub("stranger.example")  # its Peer row exists, no event pinned its key
    member = stranger.member("acme")
    audit_record_many([received_event(member, hub_key=stranger.peer.public_key_bytes)])
    code, output = verify(hub, tmp_path)
    assert code == 1
    assert "no peer.registered leaf before it pins a key of the home hub 'stranger.example'" in (
        output
    )


def test_a_key_received_without_the_registration_cannot_prove_the_key(bravo, hub, tmp_path):
    member = bravo.member("acme")
    event = received_event(
        member,
        hub_key=bravo.peer.public_key_bytes,
        **{Key.REGISTRATION: None, Key.REGISTRATION_SIGNATURE: None, Key.PUBLIC_KEY: None},
    )
    audit_record_many([event])
    code, output = verify(hub, tmp_path)
    assert code == 1 and "does not carry the member's registration" in output


def test_a_relayed_contribution_signed_for_another_hub_fails(bravo):
    """The binding proves the key for bravo's acme: a leaf whose signed hub is another fails."""
    member = bravo.member("acme")
    record = received_event(member, hub_key=bravo.peer.public_key_bytes)
    received = {"action": record.action, "organisation": "acme", "data": dict(record.data)}
    keys: dict[str, dict] = {}
    peers = {"bravo.example": [[0, bravo.peer.key_id]]}
    assert verifier.receive_key(keys, peers, 1, received) is None
    for hub_id, failing in (("bravo.example", False), ("charlie.example", True)):
        document = member.contribution(hub=hub_id)
        canonical = canonical_bytes(document)
        signature = member.sign(document)
        leaf = {
            "organisation": "acme",
            "object": {"id": document["uuid"]},
            "data": {
                "uuid": document["uuid"],
                "key_id": member.key_id,
                "content_hash": hashlib.sha256(canonical).hexdigest(),
                "signature": signature,
                "action": "add",
                "signal_type": "pdq",
                "value": document["signal"]["value"],
                "labels": document["labels"],
            },
        }
        served = {"canonical": b64(canonical), "signature": signature}
        problem = verifier.check_contribution(2, leaf, served, keys)
        assert (problem is not None and "the leaf's hub differ" in problem) == failing, problem


# --- the sending hub ----------------------------------------------------------------------------


def test_each_binding_this_hub_signs_is_logged_and_verified(acme_submitter, hub, tmp_path):
    key = SigningKey.objects.get(organisation=acme_submitter.organisation)
    key_bindings_for([key])
    key_bindings_for([key])  # the binding in force is reused: nothing new is signed or logged
    signing_key_revoke(key=key, reason="lost", actor=ACTOR, effective_at=None)
    events = list(AuditEvent.objects.filter(action=Action.KEY_BOUND).order_by("id"))
    assert len(events) == 2
    assert events[1].data[Key.BINDING].count('"revoked_at":"') == 1
    code, output = verify(hub, tmp_path)
    assert code == 0, output
    assert "OK    2 key bindings (key.received, key.bound)" in output


def test_a_key_bound_leaf_not_signed_by_the_hub_key_fails(acme_submitter, hub, tmp_path):
    key = SigningKey.objects.get(organisation=acme_submitter.organisation)
    key_bindings_for([key])
    event = AuditEvent.objects.get(action=Action.KEY_BOUND)
    forged = Ed25519PrivateKey.generate().sign(event.data[Key.BINDING].encode())
    audit_record_many(
        [
            AuditRecord(
                action=Action.KEY_BOUND,
                actor=ACTOR,
                organisation=event.organisation,
                object_type=ObjectType.SIGNING_KEY,
                object_id=event.object_id,
                data={**event.data, Key.BINDING_SIGNATURE: b64(forged)},
            )
        ],
        occurred_at=event.occurred_at + timedelta(seconds=1),
    )
    code, output = verify(hub, tmp_path)
    assert code == 1
    assert "the binding's signature does not verify under the hub's key" in output


def test_a_state_saved_without_the_peers_keys_is_verified_afresh(bravo, hub, tmp_path):
    member = bravo.member("acme")
    assert bravo.push([contribution_item(member)]).json()["accepted"] == 1
    assert verify(hub, tmp_path)[0] == 0
    path = tmp_path / "state" / "state.json"
    saved = json.loads(path.read_text())
    del saved["peers"]
    path.write_text(json.dumps(saved))
    code, output = verify(hub, tmp_path)
    assert code == 0, output
    assert "the state predates checking key bindings: fetching every entry again" in output
    assert "OK    1 key bindings (key.received, key.bound)" in output
    assert "peers" in json.loads(path.read_text())
