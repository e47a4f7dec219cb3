"""Receiving batches from peer hubs (docs/federation.md, "Receiving"): what is accepted, what is
refused as a whole, what is rejected alone, and what each leaves in the audit log."""

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.contributions.models import Contribution, Entry
from federation.propagation.models import KeyBinding, OutboxItem, Receipt
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from members.models import Organisation, Peer, SigningKey, key_id_for
from tests.support.federation import (
    RemoteHub,
    contribution_item,
    entry_item,
    key_item,
    now_seconds,
)
from tests.support.sending import make_peer

pytestmark = pytest.mark.django_db


@pytest.fixture
def bravo(db):
    return RemoteHub("bravo.example")


@pytest.fixture
def charlie(db):
    return RemoteHub("charlie.example", policy=Peer.InboundPolicy.REVIEW)


def _events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _ok(response):
    assert response.status_code == 200, response.json()
    return response.json()


def _entry(item):
    signal = item["contribution"]["signal"]
    return Entry.objects.get(signal_type=signal["type"], value=signal["value"].lower())


# --- Accepted --------------------------------------------------------------------------------


def test_an_add_from_a_trusted_peer_is_stored_for_the_mirror_and_vetted(bravo):
    member = bravo.member("acme")
    item = contribution_item(member)
    body = _ok(bravo.push([item]))
    assert body["accepted"] == 1 and body["rejected"] == 0 and body["duplicates"] == 0
    result = body["results"][0]
    assert result["status"] == "accepted" and len(result["digest"]) == 64
    contribution = Contribution.objects.get(uuid=item["contribution"]["uuid"])
    assert contribution.origin_hub == "bravo.example"
    assert (contribution.organisation.hub, contribution.organisation.slug) == (
        "bravo.example",
        "acme",
    )
    assert not contribution.organisation.is_local
    assert _entry(item).state == Entry.State.VETTED
    vetted = _events(Action.ENTRY_VETTED)[-1]
    assert vetted.actor_type == "hub" and vetted.actor_id == "bravo.example"
    key = SigningKey.objects.get(key_id=member.key_id)
    assert key.organisation == contribution.organisation
    assert KeyBinding.objects.filter(signing_key=key, received_from="bravo.example").count() == 1
    (received_key,) = _events(Action.KEY_RECEIVED)
    assert (
        received_key.data["hub"] == "bravo.example" and received_key.data["peer"] == "bravo.example"
    )
    (received,) = _events(Action.FEDERATION_RECEIVED)
    assert received.data["accepted"] == [result["digest"]] and received.data["via"] == "push"
    receipt = Receipt.objects.get(contribution=contribution)
    assert receipt.peer_hub == "bravo.example" and receipt.path == ["bravo.example"]
    assert receipt.attestations == item["attestations"]
    assert receipt.effective_scope == "federation"


def test_an_add_from_a_review_peer_waits_for_local_review(charlie):
    item = contribution_item(charlie.member("initech"))
    assert _ok(charlie.push([item]))["accepted"] == 1
    assert _entry(item).state == Entry.State.PENDING
    assert not _events(Action.ENTRY_VETTED)


def test_a_redelivered_item_is_acknowledged_and_changes_nothing(bravo):
    item = contribution_item(bravo.member())
    _ok(bravo.push([item]))
    events = AuditEvent.objects.exclude(action=Action.FEDERATION_RECEIVED).count()
    body = _ok(bravo.push([item]))
    assert body["duplicates"] == 1 and body["results"][0]["status"] == "duplicate"
    assert Receipt.objects.count() == 1 and Contribution.objects.count() == 1
    assert AuditEvent.objects.exclude(action=Action.FEDERATION_RECEIVED).count() == events
    assert _events(Action.FEDERATION_RECEIVED)[-1].data["duplicates"] == [
        body["results"][0]["digest"]
    ]


def test_the_same_contribution_from_two_peers_is_stored_once_with_two_receipts(bravo, charlie):
    member = bravo.member()
    document = member.contribution()
    _ok(bravo.push([contribution_item(member, document)]))
    relayed = contribution_item(member, document, via=[bravo, charlie])
    body = _ok(charlie.push([relayed]))
    assert body["results"][0]["status"] == "duplicate"
    assert Contribution.objects.filter(uuid=document["uuid"]).count() == 1
    receipts = Receipt.objects.filter(contribution__uuid=document["uuid"]).order_by("id")
    assert [r.peer_hub for r in receipts] == ["bravo.example", "charlie.example"]
    assert receipts[1].path == ["bravo.example", "charlie.example"]


def test_sent_to_is_kept_on_the_receipt_and_no_peer_it_names_is_sent_the_item(bravo):
    # This hub peers with bravo (the sender), delta (which bravo says it sent the item to) and
    # echo (which bravo did not name): only echo is owed the item from here.
    linked = {hub: make_peer(hub) for hub in ("delta.example", "echo.example")}
    item = {**contribution_item(bravo.member()), "sent_to": ["delta.example", "zulu.example"]}
    assert _ok(bravo.push([item]))["accepted"] == 1
    receipt = Receipt.objects.get()
    assert receipt.sent_to == ["delta.example", "zulu.example"]
    owed = OutboxItem.objects.filter(contribution=receipt.contribution)
    assert [row.peer_id for row in owed] == [linked["echo.example"].pk]


@pytest.mark.parametrize(
    "sent_to",
    [
        "delta.example",
        ["delta.example", "delta.example"],
        ["bravo.example"],  # on the path
        ["not a hub id"],
        [f"hub-{n}.example" for n in range(65)],
    ],
)
def test_a_malformed_sent_to_rejects_the_item_alone(bravo, sent_to):
    good = contribution_item(bravo.member())
    bad = {**contribution_item(bravo.member()), "sent_to": sent_to}
    body = _ok(bravo.push([bad, good]))
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert body["results"][0]["code"] == "invalid"
    assert "sent_to" in body["results"][0]["message"]


def test_sent_to_belongs_to_contribution_items_only(bravo):
    member = bravo.member()
    item = {**key_item(member), "sent_to": ["delta.example"]}
    (result,) = _ok(bravo.push([item]))["results"]
    assert result["code"] == "invalid" and "sent_to" in result["message"]


def test_peers_scope_arrives_as_hub_only(bravo):
    member = bravo.member()
    item = contribution_item(member, member.contribution(scope="peers"))
    assert _ok(bravo.push([item]))["accepted"] == 1
    assert Receipt.objects.get().effective_scope == "hub"
    assert Contribution.objects.get().scope == "peers"  # the signed scope stays as signed


def test_peers_scope_beyond_one_hop_and_hub_scope_are_out_of_scope(bravo, charlie):
    member = bravo.member()
    relayed = contribution_item(member, member.contribution(scope="peers"), via=[bravo, charlie])
    local_only = contribution_item(member, member.contribution(scope="hub"))
    body = _ok(charlie.push([relayed]))
    assert body["results"][0]["code"] == "out_of_scope"
    body = _ok(bravo.push([local_only]))
    assert body["results"][0]["code"] == "out_of_scope"
    assert not Contribution.objects.exists()


def test_a_retraction_after_the_add_retracts_the_entry_here(bravo):
    member = bravo.member()
    add = contribution_item(member)
    _ok(bravo.push([add]))
    signal = add["contribution"]["signal"]
    retract_document = member.contribution(action="retract", labels=[], signal=signal)
    retract = contribution_item(member, retract_document, state="retracted")
    body = _ok(bravo.push([retract]))
    assert body["accepted"] == 1, body
    assert _entry(add).state == Entry.State.RETRACTED
    assert Contribution.objects.get(uuid=add["contribution"]["uuid"]).status == "withdrawn"
    assert Receipt.objects.get(contribution__uuid=retract_document["uuid"]).effective_scope == (
        "federation"
    )


# --- Refused as a whole ------------------------------------------------------------------------


def test_a_tampered_batch_is_refused_whole_and_audited(bravo):
    body = bravo.batch([contribution_item(bravo.member())])
    body["batch"]["items"][0]["contribution"]["labels"] = ["other"]
    response = bravo.client.post("/api/v1/federation/batches", body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_batch_signature"
    assert not Contribution.objects.exists()
    (refused,) = _events(Action.FEDERATION_BATCH_REFUSED)
    assert refused.data["code"] == "bad_batch_signature"
    assert refused.data["peer"] == "bravo.example" and refused.data["batch"] == body["batch"]["id"]
    assert refused.data["request"]["sha256"]


def test_a_batch_signed_by_another_key_is_refused(bravo):
    response = bravo.push([], signer=Ed25519PrivateKey.generate())
    assert response.json()["error"]["code"] == "bad_batch_signature"


def test_a_batch_from_another_hub_or_to_another_hub_is_refused(bravo, charlie):
    assert bravo.push([], sender="charlie.example").json()["error"]["code"] == "wrong_sender"
    response = bravo.push([], to="elsewhere.example")
    assert response.status_code == 400 and response.json()["error"]["code"] == "wrong_receiver"
    assert [e.data["code"] for e in _events(Action.FEDERATION_BATCH_REFUSED)] == [
        "wrong_sender",
        "wrong_receiver",
    ]


def test_an_unknown_peer_token_is_refused_and_audited(bravo, anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer cp_0123456789ab_notasecret")
    response = anonymous.post("/api/v1/federation/batches", bravo.batch([]), format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    (refused,) = _events(Action.FEDERATION_BATCH_REFUSED)
    assert refused.data["code"] == "authentication_failed"
    assert refused.data["peer"] == "bravo.example"  # as claimed: unauthenticated evidence
    assert refused.actor_type == "system"


def test_no_token_or_a_member_token_is_refused(bravo, anonymous, acme_submitter):
    assert (
        anonymous.post("/api/v1/federation/batches", bravo.batch([]), format="json").status_code
        == 401
    )
    response = acme_submitter.client.post(
        "/api/v1/federation/batches", bravo.batch([]), format="json"
    )
    assert response.status_code == 401


def test_a_suspended_peer_is_refused_and_audited(bravo):
    Peer.objects.filter(pk=bravo.peer.pk).update(state=Peer.State.SUSPENDED)
    response = bravo.push([contribution_item(bravo.member())])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "peer_suspended"
    assert not Contribution.objects.exists()
    assert _events(Action.FEDERATION_BATCH_REFUSED)[0].data["code"] == "peer_suspended"


def test_a_malformed_envelope_is_refused_with_its_field(bravo):
    body = bravo.batch([])
    body["batch"]["v"] = 2
    response = bravo.client.post("/api/v1/federation/batches", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["details"]["field"] == "batch.v"


def test_more_than_500_items_is_refused(bravo):
    response = bravo.push([{"type": "key"}] * 501)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_items"


def test_a_body_over_the_limit_is_refused(bravo, settings):
    settings.FEDERATION_MAX_BODY_BYTES = 1_000
    response = bravo.push([contribution_item(bravo.member())])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _events(Action.FEDERATION_BATCH_REFUSED)[0].data["code"] == "payload_too_large"


def test_requests_over_the_peer_rate_are_throttled(bravo, settings):
    from django.core.cache import cache

    cache.clear()
    settings.FEDERATION_PEER_RATE = "2/minute"
    assert bravo.push([]).status_code == 200
    assert bravo.push([]).status_code == 200
    response = bravo.push([])
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    cache.clear()


# --- Rejected alone --------------------------------------------------------------------------


def test_a_forged_member_signature_is_rejected_alone_and_kept_as_evidence(bravo):
    member = bravo.member()
    good = contribution_item(member)
    forged_document = member.contribution()
    forger = bravo.member("acme", private_key=Ed25519PrivateKey.generate())
    forged = contribution_item(member, forged_document, signature=forger.sign(forged_document))
    body = _ok(bravo.push([forged, good]))
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert body["results"][0]["code"] == "bad_signature"
    (rejected,) = _events(Action.CONTRIBUTION_REJECTED)
    assert rejected.data["code"] == "bad_signature"
    assert rejected.data["uuid"] == forged_document["uuid"]
    assert rejected.data["canonical"] and rejected.data["signature"] == forged["signature"]
    assert rejected.actor_id == "bravo.example"
    received = _events(Action.FEDERATION_RECEIVED)[0].data
    assert received["rejected"][0]["code"] == "bad_signature"
    assert received["rejected"][0]["item"] == body["results"][0]["digest"]


def test_a_key_binding_signed_by_another_hub_key_is_rejected(bravo):
    member = bravo.member()
    item = contribution_item(member, key=member.key_section(signer=Ed25519PrivateKey.generate()))
    body = _ok(bravo.push([item]))
    assert body["results"][0]["code"] == "unbound_key"
    assert not SigningKey.objects.filter(key_id=member.key_id).exists()


def test_a_key_bound_by_a_relaying_hub_not_its_home_is_rejected(bravo, charlie):
    # Charlie relays bravo's member, but signs the binding itself: only the home hub binds.
    member = bravo.member()
    item = contribution_item(
        member, via=[bravo, charlie], key=member.key_section(signer=charlie.private_key)
    )
    assert _ok(charlie.push([item]))["results"][0]["code"] == "unbound_key"


def test_a_binding_of_another_registration_is_rejected(bravo):
    member = bravo.member()
    item = contribution_item(member, key=member.key_section(registration_sha256="0" * 64))
    assert _ok(bravo.push([item]))["results"][0]["code"] == "unbound_key"


def test_a_binding_for_another_member_is_rejected(bravo):
    member = bravo.member("acme")
    item = contribution_item(member, key=member.key_section(member="globex"))
    assert _ok(bravo.push([item]))["results"][0]["code"] == "unbound_key"


def test_a_registration_with_a_bad_self_signature_is_rejected(bravo):
    member = bravo.member()
    section = member.key_section()
    section["signature"] = member.sign({"other": "object"})
    item = contribution_item(member, key=section)
    assert _ok(bravo.push([item]))["results"][0]["code"] == "invalid_registration"


@pytest.mark.parametrize("length", [31, 33])
def test_a_registered_key_of_the_wrong_length_is_rejected_alone(bravo, length):
    # 44 characters of padded base64 that decode to 31 or 33 bytes: refused as an item, and
    # the rest of the batch is applied (it was a 500 that lost the whole batch).
    bad, good = bravo.member("acme"), bravo.member("globex")
    raw = bytes(range(1, length + 1))
    bad.registration["public_key"] = base64.b64encode(raw).decode()
    bad.registration["key_id"] = key_id_for(raw)
    body = _ok(bravo.push([contribution_item(bad), key_item(bad), contribution_item(good)]))
    assert [r["status"] for r in body["results"]] == ["rejected", "rejected", "accepted"]
    assert {r.get("code") for r in body["results"][:2]} == {"invalid_registration"}
    assert "public_key" in body["results"][0]["message"]
    assert not SigningKey.objects.filter(key_id=key_id_for(raw)).exists()
    (received,) = _events(Action.FEDERATION_RECEIVED)
    assert [r["code"] for r in received.data["rejected"]] == ["invalid_registration"] * 2


def test_a_missing_key_section_is_invalid(bravo):
    item = contribution_item(bravo.member())
    del item["key"]
    body = _ok(bravo.push([item]))
    assert body["results"][0]["code"] == "invalid" and "key" in body["results"][0]["message"]


def test_an_unknown_hub_in_the_path_is_rejected(bravo):
    stranger = RemoteHub.__new__(RemoteHub)
    stranger.hub_id, stranger.private_key = "stranger.example", Ed25519PrivateKey.generate()
    member = RemoteHub.member(stranger, "acme")
    item = contribution_item(member, via=[stranger, bravo])
    assert _ok(bravo.push([item]))["results"][0]["code"] == "unknown_hub"


def test_a_known_only_origin_hub_is_accepted_through_a_link(bravo):
    origin = RemoteHub("origin.example", link=False)
    item = contribution_item(origin.member("umbrella"), via=[origin, bravo])
    assert _ok(bravo.push([item]))["accepted"] == 1
    assert Organisation.objects.get(slug="umbrella").hub == "origin.example"


def test_this_hub_in_the_path_is_a_loop(bravo, settings):
    me = RemoteHub.__new__(RemoteHub)
    me.hub_id, me.private_key = settings.HUB_ID, Ed25519PrivateKey.generate()
    item = contribution_item(RemoteHub.member(me, "acme"), via=[me, bravo])
    assert _ok(bravo.push([item]))["results"][0]["code"] == "loop"


def test_a_path_over_the_hop_limit_is_rejected(bravo, settings):
    settings.FEDERATION_HOP_LIMIT = 2
    hubs = [RemoteHub(f"hop{n}.example", link=False) for n in range(2)]
    item = contribution_item(hubs[0].member(), via=[*hubs, bravo])
    assert _ok(bravo.push([item]))["results"][0]["code"] == "hop_limit"


def test_a_path_not_ending_with_the_sender_is_rejected(bravo, charlie):
    item = contribution_item(charlie.member())
    assert _ok(bravo.push([item]))["results"][0]["code"] == "wrong_path"


def test_a_missing_or_forged_attestation_is_rejected(bravo, charlie):
    member = bravo.member()
    item = contribution_item(member, via=[bravo, charlie])
    item["attestations"] = item["attestations"][1:]
    forged = contribution_item(member, via=[bravo, charlie])
    forged["attestations"][0] = charlie.attestation(
        forged["contribution"]["signal"], hub="bravo.example"
    )
    other_signal = contribution_item(member)
    other_signal["attestations"] = [bravo.attestation({"type": "md5", "value": "a" * 32})]
    body = _ok(charlie.push([item, forged]))
    assert [r["code"] for r in body["results"]] == ["bad_attestation", "bad_attestation"]
    assert _ok(bravo.push([other_signal]))["results"][0]["code"] == "bad_attestation"


def test_a_contribution_of_another_hub_than_the_path_origin_is_rejected(bravo, charlie):
    member = charlie.member()
    item = contribution_item(member)
    item["path"], item["attestations"] = (
        ["bravo.example"],
        [bravo.attestation(item["contribution"]["signal"])],
    )
    assert _ok(bravo.push([item]))["results"][0]["code"] == "wrong_origin"


def test_a_malformed_item_is_rejected_alone(bravo):
    good = contribution_item(bravo.member())
    body = _ok(bravo.push([{"type": "nonsense"}, good, "text"]))
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted", "rejected"]
    assert body["results"][0]["code"] == "invalid"


# --- Keys ------------------------------------------------------------------------------------


def test_a_revocation_then_a_contribution_signed_after_it_is_refused(bravo):
    member = bravo.member()
    before = contribution_item(member)
    _ok(bravo.push([before]))
    revoked_at = now_seconds() - timedelta(seconds=30)
    member.revoked_at, member.issued_at = revoked_at, now_seconds()
    body = _ok(bravo.push([key_item(member)]))
    assert body["results"][0]["status"] == "accepted"
    key = SigningKey.objects.get(key_id=member.key_id)
    assert key.revoked_at == revoked_at
    (revoked,) = _events(Action.KEY_REVOKED)
    assert revoked.actor_type == "hub" and revoked.data["key_id"] == member.key_id
    assert KeyBinding.objects.filter(signing_key=key).count() == 2
    # The old binding travels with the next item: the revocation held here still applies.
    member.revoked_at, member.issued_at = None, member.not_before
    after = contribution_item(
        member, member.contribution(created_at=now_seconds().strftime("%Y-%m-%dT%H:%M:%SZ"))
    )
    body = _ok(bravo.push([after]))
    assert body["results"][0]["code"] == "key_not_active"
    assert _ok(bravo.push([key_item(member)]))["results"][0]["status"] == "duplicate"


def test_a_revoked_binding_in_the_item_itself_refuses_later_signatures(bravo):
    member = bravo.member(revoked_at=now_seconds() - timedelta(minutes=5))
    item = contribution_item(member)  # created a minute ago, after the revocation
    assert _ok(bravo.push([item]))["results"][0]["code"] == "key_not_active"


@pytest.mark.parametrize("revocation_first", [True, False])
def test_a_revocation_anywhere_in_a_batch_applies_to_every_contribution_of_that_batch(
    bravo, revocation_first
):
    member = bravo.member()
    signed_before = contribution_item(member)  # created a minute ago
    signed_after = contribution_item(
        member, member.contribution(created_at=now_seconds().strftime("%Y-%m-%dT%H:%M:%SZ"))
    )
    member.revoked_at, member.issued_at = now_seconds() - timedelta(seconds=30), now_seconds()
    revocation = key_item(member)
    items = [signed_before, signed_after]
    items = [revocation, *items] if revocation_first else [*items, revocation]

    results = {r["index"]: r for r in _ok(bravo.push(items))["results"]}

    first = 1 if revocation_first else 0
    assert results[first]["status"] == "accepted"  # signed before revoked_at
    assert results[first + 1]["code"] == "key_not_active"  # its own binding is not revoked
    assert results[items.index(revocation)]["status"] == "accepted"
    key = SigningKey.objects.get(key_id=member.key_id)
    assert key.revoked_at == member.revoked_at


def test_a_key_id_held_for_another_member_is_a_conflict(bravo, acme_submitter):
    member = bravo.member()
    SigningKey.objects.filter(pk=acme_submitter.signing_key.pk).update(key_id=member.key_id)
    assert _ok(bravo.push([contribution_item(member)]))["results"][0]["code"] == "key_conflict"


# --- Entry items -----------------------------------------------------------------------------


def test_a_dispute_and_its_outcome_from_a_trusted_peer_apply_here(bravo):
    add = contribution_item(bravo.member())
    _ok(bravo.push([add]))
    signal = add["contribution"]["signal"]
    assert _ok(bravo.push([entry_item([bravo], signal, state="disputed")]))["accepted"] == 1
    assert _entry(add).state == Entry.State.DISPUTED
    assert _ok(bravo.push([entry_item([bravo], signal, state="rejected")]))["accepted"] == 1
    assert _entry(add).state == Entry.State.REJECTED
    assert _events(Action.ENTRY_DISPUTE_RESOLVED)[-1].actor_id == "bravo.example"
    body = _ok(bravo.push([entry_item([bravo], signal, state="rejected")]))
    assert body["results"][0]["status"] == "duplicate"


def test_a_rejection_of_a_vetted_entry_moves_it_in_two_steps(bravo):
    add = contribution_item(bravo.member())
    _ok(bravo.push([add]))
    _ok(bravo.push([entry_item([bravo], add["contribution"]["signal"], state="rejected")]))
    assert _entry(add).state == Entry.State.REJECTED
    assert len(_events(Action.ENTRY_DISPUTED)) == 1


def test_entry_items_from_a_review_peer_are_recorded_only(charlie, bravo):
    add = contribution_item(bravo.member())
    _ok(bravo.push([add]))
    signal = add["contribution"]["signal"]
    body = _ok(charlie.push([entry_item([charlie], signal, state="disputed")]))
    assert body["accepted"] == 1
    assert _entry(add).state == Entry.State.VETTED  # recorded, not applied
    assert _events(Action.FEDERATION_RECEIVED)[-1].data["accepted"] == [
        body["results"][0]["digest"]
    ]


# --- Cost ------------------------------------------------------------------------------------


def test_a_batch_costs_a_fixed_number_of_queries_whatever_its_size(bravo):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from federation.receiving.receive import batch_receive

    members = [bravo.member("acme"), bravo.member("globex")]
    _ok(bravo.push([contribution_item(member) for member in members]))  # mirrors and keys exist
    counts = []
    for size in (4, 40):
        body = bravo.batch([contribution_item(members[n % 2]) for n in range(size)])
        with CaptureQueriesContext(connection) as queries:
            result = batch_receive(peer=bravo.peer, body=body, via="push")
        assert result.count("accepted") == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_received_revocation_travels_on_to_peers_that_were_sent_the_keys_contributions(bravo):
    from federation.propagation.models import OutboxItem

    delta = RemoteHub("delta.example")
    member = bravo.member()
    _ok(bravo.push([contribution_item(member)]))  # trusted: vetted here, owed to delta
    assert OutboxItem.objects.filter(peer=delta.peer, kind="contribution").count() == 1
    member.revoked_at, member.issued_at = now_seconds(), now_seconds()
    _ok(bravo.push([key_item(member)]))
    rows = OutboxItem.objects.filter(kind="key")
    assert [(row.peer.hub_id, row.path) for row in rows] == [("delta.example", ["bravo.example"])]
