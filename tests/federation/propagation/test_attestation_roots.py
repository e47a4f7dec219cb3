"""Attestations under one signed root (docs/federation.md, "Attestations under one root"): the
tree and its proofs against RFC 9162 written out again here, what a receiver accepts and
rejects, and what a sender writes for a peer that takes them."""

import base64
import hashlib
import io

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from federation.canonical import canonical_bytes, canonical_json_bytes
from federation.hubkey import hub_public_key
from federation.propagation import attestation_roots, delivery, wire
from federation.propagation.attestation_roots import Tree, root_from_proof
from federation.propagation.items import ItemsBuilder
from federation.propagation.models import OutboxItem, PeerLink, Receipt
from federation.propagation.selectors import peers_health
from tests.support.federation import RemoteHub, contribution_item, entry_item
from tests.support.rfc9162 import mth, path
from tests.support.sending import accept_all, make_peer, row_refs, rows, vetted_entry


def _proves(leaf_hash, *, index, size, proof, root):
    return root_from_proof(leaf_hash, index=index, size=size, proof=proof) == root


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33, 64])
def test_the_tree_and_its_proofs_are_rfc_9162s(size):
    leaves = [f"attestation {i}".encode() for i in range(size)]
    tree = Tree(leaves)
    assert tree.root == mth(leaves)
    for index, leaf in enumerate(leaves):
        proof = tuple(tree.proof(index))
        assert list(proof) == path(index, leaves)
        leaf_hash = hashlib.sha256(b"\x00" + leaf).digest()
        assert _proves(leaf_hash, index=index, size=size, proof=proof, root=tree.root)
        # Another leaf or place, or a proof cut or padded: not the root.
        other = hashlib.sha256(b"\x00other").digest()
        assert not _proves(other, index=index, size=size, proof=proof, root=tree.root)
        if size > 1:
            moved = (index + 1) % size
            assert not _proves(leaf_hash, index=moved, size=size, proof=proof, root=tree.root)
            assert not _proves(leaf_hash, index=index, size=size, proof=proof[:-1], root=tree.root)
        assert root_from_proof(leaf_hash, index=index, size=size, proof=(*proof, other)) is None
    assert root_from_proof(b"", index=size, size=size, proof=()) is None


def test_a_tree_covers_one_to_65536_attestations():
    for leaves in ([], [b""] * 65_537):
        with pytest.raises(ValueError):
            Tree(leaves)
    assert Tree([b""] * 65_536).size == 65_536


# --- Receiving ----------------------------------------------------------------------------------


@pytest.fixture
def bravo(db):
    return RemoteHub("bravo.example")


@pytest.fixture
def delta(db):
    return RemoteHub("delta.example")


def _rooted_items(sender, count=3, **overrides):
    items = [contribution_item(sender.member("acme")) for _ in range(count)]
    pairs = sender.under_root([item["attestations"][0] for item in items], **overrides)
    for item, pair in zip(items, pairs, strict=True):
        item["attestations"] = [pair]
    return items


def test_contributions_whose_attestations_share_a_root_are_accepted_and_kept_verbatim(bravo):
    items = _rooted_items(bravo)
    answer = bravo.push(items)
    assert answer.status_code == 200, answer.json()
    assert [r["status"] for r in answer.json()["results"]] == ["accepted"] * 3
    receipts = Receipt.objects.order_by("contribution__uuid")
    by_uuid = {item["contribution"]["uuid"]: item for item in items}
    for receipt in receipts:
        assert receipt.attestations == by_uuid[str(receipt.contribution.uuid)]["attestations"]
        assert receipt.contribution.entry.state == "vetted"
    assert answer["Concordat-Attestation-Roots"] == "1"


def test_an_entry_item_under_a_root_applies(bravo):
    items = _rooted_items(bravo, count=1)
    bravo.push(items)
    signal = items[0]["contribution"]["signal"]
    dispute = entry_item([bravo], signal, state="disputed")
    dispute["attestations"] = bravo.under_root(dispute["attestations"])
    answer = bravo.push([dispute]).json()
    assert answer["results"][0]["status"] == "accepted", answer
    assert Receipt.objects.get().contribution.entry.state == "disputed"


def test_a_relayed_item_keeps_the_origins_root_beside_the_relays_own_attestation(bravo, delta):
    member = bravo.member("acme")
    item = contribution_item(member, via=[bravo, delta])
    item["attestations"][0] = bravo.under_root([item["attestations"][0]])[0]
    answer = delta.push([item]).json()
    assert answer["results"][0]["status"] == "accepted", answer
    assert Receipt.objects.get().attestations == item["attestations"]


def _rejected(hub, items):
    answer = hub.push(items)
    assert answer.status_code == 200, answer.json()
    return [(r["status"], r.get("code")) for r in answer.json()["results"]]


def test_a_root_signed_by_another_key_rejects_every_item_under_it(bravo):
    items = _rooted_items(bravo, signer=RemoteHub("mallory.example").private_key)
    assert _rejected(bravo, items) == [("rejected", "bad_attestation")] * 3
    assert not Receipt.objects.exists()


def test_an_attestation_its_proof_does_not_lead_to_the_signed_root_is_rejected_alone(bravo):
    items = _rooted_items(bravo)
    items[1]["attestations"][0]["proof"] = base64.b64encode(b"\x00" * 64).decode()
    items[2]["attestations"][0]["attestation"]["policy"] = "changed after signing"
    assert _rejected(bravo, items) == [
        ("accepted", None),
        ("rejected", "bad_attestation"),
        ("rejected", "bad_attestation"),
    ]


def test_the_root_is_the_attestations_own_hub_and_time_and_its_place_is_its_index(bravo):
    # A root signed for another hub, another time or another size, or the right root with the
    # attestation put at another index: the root rebuilt here is not the one signed.
    for overrides in ({"hub": "delta.example"}, {"attested_at": "2026-01-01T00:00:00Z"}):
        assert (
            _rejected(bravo, _rooted_items(bravo, **overrides))
            == [("rejected", "bad_attestation")] * 3
        )
    items = _rooted_items(bravo)
    items[0]["attestations"][0]["index"] = 1
    items[2]["attestations"][0]["size"] = 4
    assert _rejected(bravo, items) == [
        ("rejected", "bad_attestation"),
        ("accepted", None),
        ("rejected", "bad_attestation"),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(index=3), "index"),
        (lambda p: p.update(index=True), "index"),
        (lambda p: p.update(index=-1), "index"),
        (lambda p: p.update(size=0), "size"),
        (lambda p: p.update(size=65537), "size"),
        (lambda p: p.update(size="3"), "size"),
        (lambda p: p.update(proof=["0" * 64]), "proof"),
        (lambda p: p.update(proof=base64.b64encode(b"\x00" * 31).decode()), "proof"),
        (lambda p: p.update(proof=base64.b64encode(b"\x00" * 32 * 17).decode()), "proof"),
        (lambda p: p.update(proof=p["proof"].rstrip("=")), "proof"),
        (lambda p: p.update(proof=" " + p["proof"]), "proof"),
        (lambda p: p.update(root_signature="not base64"), "root_signature"),
        (lambda p: p.update(signature="x"), "attestations[0]"),
        (lambda p: p.pop("size"), "attestations[0]"),
        (lambda p: p["attestation"].pop("policy"), "policy"),
    ],
)
def test_a_malformed_rooted_pair_is_invalid_and_names_its_field(bravo, change, field):
    items = _rooted_items(bravo)
    change(items[0]["attestations"][0])
    answer = bravo.push(items).json()
    first = answer["results"][0]
    assert (first["status"], first["code"]) == ("rejected", "invalid"), answer
    assert field in first["message"], first
    assert [r["status"] for r in answer["results"][1:]] == ["accepted", "accepted"]


# --- Sending ------------------------------------------------------------------------------------


def _built(roots, documents=True, peer_hub="bravo.hub"):
    refs = row_refs(rows())
    builder = ItemsBuilder(
        refs, peer_hub=peer_hub, now=timezone.now(), documents=documents, roots=roots
    )
    return builder.build(refs)


def test_a_senders_attestations_go_under_a_root_for_each_64_it_signed(acme_submitter):
    make_peer("bravo.hub")
    for _ in range(70):
        vetted_entry(acme_submitter)
    built = _built(roots=True)
    pairs = [item["attestations"][-1] for _row, item, _digest in built.items]
    assert len(pairs) == 70 and all(p.keys() == attestation_roots.ROOTED_FIELDS for p in pairs)
    # Two roots: the first 64 attestations, then the other 6.
    assert [p["size"] for p in pairs] == [64] * 64 + [6] * 6
    assert [p["index"] for p in pairs] == [*range(64), *range(6)]
    for under in (pairs[:64], pairs[64:]):
        leaves = [canonical_bytes(p["attestation"]) for p in under]
        moment = under[0]["attestation"]["attested_at"]
        root = {
            "kind": "concordat.attestation-root",
            "v": 1,
            "hub": settings.HUB_ID,
            "size": len(under),
            "root": mth(leaves).hex(),
            "attested_at": moment,
        }
        assert {p["root_signature"] for p in under} == {under[0]["root_signature"]}
        signed = wire.SignedObject(
            root, canonical_bytes(root), base64.b64decode(under[0]["root_signature"])
        )
        assert signed.verify(hub_public_key())
        for index, pair in enumerate(under):
            assert pair["attestation"]["attested_at"] == moment
            assert base64.b64decode(pair["proof"]) == b"".join(path(index, leaves))
    # The bytes written are the item's RFC 8785 bytes, with or without the item's dict, and
    # the receiver's parser rebuilds the same root from each.
    pushed = _built(roots=True, documents=False)
    for row, item, digest in built.items:
        assert built.canonical[row] == canonical_json_bytes(item)
        assert digest == hashlib.sha256(built.canonical[row]).hexdigest()
        (attestation,) = wire.parse_item(item, index=0).attestations
        assert attestation.root() is not None
    assert sorted(pushed.canonical) == sorted(built.canonical)
    for raw in pushed.canonical.values():
        assert canonical_json_bytes(orjson.loads(raw)) == raw


def test_without_roots_each_attestation_is_signed_alone(acme_submitter):
    make_peer("bravo.hub")
    vetted_entry(acme_submitter)
    ((_row, item, _digest),) = _built(roots=False).items
    assert item["attestations"][-1].keys() == {"attestation", "signature"}


def _pushed_form(acme_submitter, bravo, receiver) -> list[frozenset]:
    """Two drains of one new entry each; the members of the last batch's attestation pairs."""
    for _ in range(2):
        vetted_entry(acme_submitter)
        delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    return [frozenset(i["attestations"][-1]) for i in receiver.batches[-1]["batch"]["items"]]


def test_a_push_puts_attestations_under_a_root_once_the_peer_says_it_takes_them(
    acme_submitter, receiver, settings
):
    bravo = make_peer("bravo.hub", url=receiver.url)
    receiver.roots = True
    vetted_entry(acme_submitter)
    delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    vetted_entry(acme_submitter)
    vetted_entry(acme_submitter)
    delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    first, second = receiver.batches
    (alone,) = [i["attestations"][-1] for i in first["batch"]["items"]]
    assert alone.keys() == {"attestation", "signature"}  # nothing said yet
    assert PeerLink.objects.get(peer=bravo).takes_attestation_roots  # for every worker
    rooted = [i["attestations"][-1] for i in second["batch"]["items"]]
    assert [p.keys() for p in rooted] == [attestation_roots.ROOTED_FIELDS] * 2
    assert rooted[0]["root_signature"] == rooted[1]["root_signature"]
    assert [(p["index"], p["size"]) for p in rooted] == [(0, 2), (1, 2)]
    # A peer whose answer no longer says so is sent attestations signed alone again (from the
    # drain after that answer); and an operator can turn roots off.
    receiver.roots = False
    assert _pushed_form(acme_submitter, bravo, receiver) == [{"attestation", "signature"}]
    assert not PeerLink.objects.get(peer=bravo).takes_attestation_roots
    receiver.roots = True
    settings.FEDERATION_ATTESTATION_ROOTS = False
    assert _pushed_form(acme_submitter, bravo, receiver) == [{"attestation", "signature"}]
    assert PeerLink.objects.get(peer=bravo).takes_attestation_roots  # still said, not used


def _refusing_rooted(code):
    """Answers like a hub of a version without roots: a rooted pair is ``code``, all else taken."""

    def answer(body):
        def status_of(_index, item):
            return "rejected" if "proof" in item["attestations"][-1] else "accepted"

        message = "attestations[0]: unknown fields index, proof, root_signature, size"
        return 200, accept_all(body, status_of=status_of, code=code, message=message)

    return answer


def test_a_peer_moved_back_to_a_version_without_roots_is_sent_its_rooted_items_again_signed_alone(
    acme_submitter, receiver
):
    bravo = make_peer("bravo.hub", url=receiver.url)
    receiver.roots = True
    vetted_entry(acme_submitter)
    delivery.outbox_drain(peer_id=bravo.pk, lane="normal")  # its answer says it takes roots
    receiver.roots, receiver.answer = False, _refusing_rooted("invalid")
    entries = [vetted_entry(acme_submitter) for _ in range(2)]
    first = delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    assert (first.delivered, first.refused, first.failed) == (0, 0, 2)
    queued = OutboxItem.objects.filter(entry__in=entries)
    assert {(r.state, r.attempts) for r in queued} == {("pending", 1)}
    assert all(r.last_error.startswith("invalid: attestations[0]") for r in queued.all())
    assert not PeerLink.objects.get(peer=bravo).takes_attestation_roots
    second = delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    assert (second.delivered, second.refused) == (2, 0)
    assert {(r.state, r.attempts, r.last_error) for r in queued.all()} == {("delivered", 2, "")}
    rooted, alone = receiver.batches[-2:]
    assert [i["attestations"][-1].keys() for i in rooted["batch"]["items"]] == [
        attestation_roots.ROOTED_FIELDS
    ] * 2
    assert [i["attestations"][-1].keys() for i in alone["batch"]["items"]] == [
        {"attestation", "signature"}
    ] * 2


@pytest.mark.parametrize("code, says_roots", [("bad_signature", False), ("invalid", True)])
def test_a_rooted_item_refused_otherwise_stays_refused(acme_submitter, receiver, code, says_roots):
    """Only ``invalid`` from a peer whose answer no longer says it takes roots is built again:
    another refusal, or one from a peer that still reads roots, is the item's (not retried)."""
    bravo = make_peer("bravo.hub", url=receiver.url)
    receiver.roots = True
    vetted_entry(acme_submitter)
    delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    receiver.roots, receiver.answer = says_roots, _refusing_rooted(code)
    entry = vetted_entry(acme_submitter)
    result = delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    assert (result.refused, result.failed) == (1, 0)
    row = OutboxItem.objects.get(entry=entry)
    assert (row.state, row.last_error.split(":")[0]) == ("refused", code)


def _says_roots(consortium_admin) -> tuple[bool, str, str]:
    """What ``peers_health``, ``manage.py peer status`` and the admin's peer list say of roots."""
    out = io.StringIO()
    call_command("peer", "status", stdout=out)
    client = Client()
    client.force_login(consortium_admin.user)
    page = client.get("/admin/members/peer/").content.decode()
    ((health,),) = [peers_health()]
    shown = {"attestations under roots", "attestations signed alone"}
    return (
        health.attestation_roots,
        next(s for s in shown if s in out.getvalue()),
        next(s for s in shown if s in page),
    )


def test_peer_status_and_the_admin_say_whether_pushes_put_attestations_under_roots(
    acme_submitter, receiver, consortium_admin, settings
):
    bravo = make_peer("bravo.hub", url=receiver.url)
    alone = (False, "attestations signed alone", "attestations signed alone")
    assert _says_roots(consortium_admin) == alone  # nothing said yet
    receiver.roots = True
    vetted_entry(acme_submitter)
    delivery.outbox_drain(peer_id=bravo.pk, lane="normal")
    assert _says_roots(consortium_admin) == (
        True,
        "attestations under roots",
        "attestations under roots",
    )
    settings.FEDERATION_ATTESTATION_ROOTS = False
    assert _says_roots(consortium_admin) == alone
