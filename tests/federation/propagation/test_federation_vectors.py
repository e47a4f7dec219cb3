"""The published federation vectors (docs/federation-vectors.json) hold for wire.py, for an
independent check with PyNaCl (libsodium) and hashlib, and end to end: hub C accepts the batch."""

import base64
import hashlib
import json

import nacl.exceptions
import nacl.signing
import pytest

from federation.canonical import canonical_bytes
from federation.propagation import wire
from federation.receiving.receive import batch_receive
from members.models import Peer, key_id_for
from tests.support.federation_vectors_gen import VECTORS_PATH, render
from tests.support.jcs import independent_jcs

VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
HUBS = {hub["hub_id"]: hub for hub in VECTORS["hubs"]}
MEMBER = VECTORS["member"]
SIGNED = VECTORS["signed"] + [VECTORS["batch"]]


def _key_entry(signer: str) -> dict:
    """The key ``signer`` names, by the file's notation: a bare hub id is that hub's key,
    ``member@hub`` that member's signing key (docs/federation.md, "Test vectors")."""
    if "@" in signer:
        member, hub = signer.split("@")
        assert (member, hub) == (MEMBER["member"], MEMBER["hub"]), signer
        return MEMBER
    return HUBS[signer]


def _public_key_hex(signer: str) -> str:
    return _key_entry(signer)["public_key_hex"]


def test_the_signer_notation_is_described_in_the_file():
    assert "<member>@<hub>" in VECTORS["description"]
    assert {v["signer"] for v in SIGNED} == {"acme@hub-a.example.org", *HUBS} - {
        "hub-c.example.org"
    }


def by_id(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


def test_vectors_file_is_exactly_what_the_generator_writes():
    assert VECTORS_PATH.read_text(encoding="utf-8") == render()


def test_keys_derive_from_their_seeds():
    for entry in [*VECTORS["hubs"], MEMBER]:
        key = nacl.signing.SigningKey(bytes.fromhex(entry["seed_hex"]))
        assert key.verify_key.encode().hex() == entry["public_key_hex"]
        assert base64.b64decode(entry["public_key_b64"]).hex() == entry["public_key_hex"]
    assert key_id_for(bytes.fromhex(MEMBER["public_key_hex"])) == MEMBER["key_id"]


@by_id(SIGNED)
def test_canonical_bytes_are_rfc8785_by_two_implementations(vector):
    canonical = vector["canonical_utf8"].encode()
    assert canonical_bytes(vector["object"]) == canonical
    assert independent_jcs(vector["object"]).encode() == canonical
    assert hashlib.sha256(canonical).hexdigest() == vector["canonical_sha256_hex"]


@by_id(SIGNED)
def test_pynacl_verifies_every_signature_and_refuses_a_changed_byte(vector):
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(_public_key_hex(vector["signer"])))
    signature = base64.b64decode(vector["signature_b64"])
    canonical = vector["canonical_utf8"].encode()
    verify_key.verify(canonical, signature)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(canonical.replace(b'"v":1', b'"v":2'), signature)


@by_id(SIGNED)
def test_signing_again_from_the_seed_gives_the_same_signature(vector):
    seed = _key_entry(vector["signer"])["seed_hex"]
    signed = nacl.signing.SigningKey(bytes.fromhex(seed)).sign(vector["canonical_utf8"].encode())
    assert base64.b64encode(signed.signature).decode() == vector["signature_b64"]


@by_id(VECTORS["items"])
def test_item_digests_are_sha256_of_their_rfc8785_bytes(vector):
    assert wire.item_digest(vector["item"]) == vector["digest_hex"]
    canonical = independent_jcs(vector["item"]).encode()
    assert canonical.decode() == vector["canonical_utf8"]
    assert hashlib.sha256(canonical).hexdigest() == vector["digest_hex"]


def test_the_batch_parses_with_wire_py_and_its_items_are_the_published_ones():
    parsed = wire.parse_batch(VECTORS["batch"]["body"])
    assert parsed.problems == ()
    assert [item.digest for item in parsed.items] == [v["digest_hex"] for v in VECTORS["items"]]
    assert parsed.sender == "hub-b.example.org" and parsed.receiver == "hub-c.example.org"
    binding = parsed.items[0].binding
    registration = VECTORS["signed"][0]["canonical_utf8"].encode()
    assert binding.document["registration_sha256"] == hashlib.sha256(registration).hexdigest()


def test_the_object_kinds_are_the_documented_ones():
    kinds = {v["id"]: v["object"]["kind"] for v in SIGNED}
    assert kinds["key-binding"] == wire.KEY_BINDING_KIND
    assert kinds["attestation-dispute"] == wire.ATTESTATION_KIND
    assert kinds["batch"] == wire.BATCH_KIND
    assert kinds["contribution"] == "concordat.contribution"
    assert kinds["key-registration"] == "concordat.key"


@pytest.mark.django_db
def test_hub_c_accepts_the_vector_batch(settings):
    settings.HUB_ID = "hub-c.example.org"
    peers = {
        hub_id: Peer.objects.create(
            hub_id=hub_id,
            name=hub_id,
            url="https://hub-b.example.org" if hub_id == "hub-b.example.org" else "",
            public_key=bytes.fromhex(HUBS[hub_id]["public_key_hex"]),
            inbound_policy=Peer.InboundPolicy.TRUST,
        )
        for hub_id in ("hub-a.example.org", "hub-b.example.org")
    }
    result = batch_receive(
        peer=peers["hub-b.example.org"], body=VECTORS["batch"]["body"], via="push"
    )
    assert [r.as_dict() for r in result.results] == VECTORS["expected_results_at_hub_c"]


def test_the_worked_example_in_the_docs_is_the_vectors():
    docs = (VECTORS_PATH.parent / "federation.md").read_text(encoding="utf-8")
    by_name = {v["id"]: v for v in SIGNED}
    for name in ("key-binding", "key-registration", "attestation-hub-b.example.org"):
        assert by_name[name]["canonical_utf8"] in docs, name
    for name in ("key-binding", "attestation-hub-b.example.org", "batch"):
        assert by_name[name]["signature_b64"] in docs, name
    assert VECTORS["items"][0]["digest_hex"] in docs
    assert VECTORS["batch"]["canonical_sha256_hex"] in docs
    assert HUBS["hub-a.example.org"]["public_key_b64"] in docs


def test_every_code_the_receiving_docs_list_is_a_documented_api_code():
    from federation.api.schema import ERROR_CODES
    from federation.contributions.rejections import REJECTION_STATUS
    from federation.receiving.items import ITEM_CODES

    docs = (VECTORS_PATH.parent / "federation.md").read_text(encoding="utf-8")
    receiving = docs.split("## Receiving", 1)[1].split("## Wire format", 1)[0]
    # Of local ingest's codes, these cannot occur on a relayed item: its origin is path[0], any
    # member may sign, the key comes with the item, and unknown incidents are mirrored.
    impossible = {"wrong_hub", "member_mismatch", "unknown_key", "unknown_incident"}
    for code in [*ITEM_CODES, *(set(REJECTION_STATUS) - impossible)]:
        assert f"`{code}`" in receiving, code
    for code in ITEM_CODES:
        assert code in ERROR_CODES, code
