"""The rooted section of docs/federation-vectors.json: attestations under one root on the wire,
checked independently (PyNaCl, hashlib, a separate JCS, RFC 9162 as written), by wire.py, and
end to end at hub C."""

import base64
import hashlib

import pytest

from federation.propagation import wire
from federation.propagation.attestation_roots import RootedAttestation
from federation.receiving.receive import batch_receive
from tests.support.federation_vector_checks import (
    HUBS,
    VECTORS,
    assert_signed_vector,
    hub_a_at_hub_c,
)
from tests.support.jcs import independent_jcs
from tests.support.rfc9162 import mth, path

ROOTED = VECTORS["rooted"]


@pytest.mark.parametrize("vector", [*ROOTED["signed"], ROOTED["batch"]], ids=lambda v: v["id"])
def test_each_signature_verifies_over_the_independent_jcs_bytes(vector):
    assert_signed_vector(vector)


def test_the_root_is_the_rfc_9162_tree_of_the_attestations_bytes_and_each_proof_its_path():
    leaves = [independent_jcs(leaf["attestation"]).encode() for leaf in ROOTED["leaves"]]
    for leaf, raw in zip(ROOTED["leaves"], leaves, strict=True):
        assert raw.decode() == leaf["canonical_utf8"]
        assert hashlib.sha256(b"\x00" + raw).hexdigest() == leaf["leaf_hash_hex"]
    root = ROOTED["signed"][-1]["object"]
    assert root["kind"] == "concordat.attestation-root" and root["size"] == len(leaves) == 3
    assert root["root"] == mth(leaves).hex()
    for index, item in enumerate(ROOTED["items"]):
        (pair,) = item["item"]["attestations"]
        assert (pair["index"], pair["size"]) == (index, root["size"])
        assert pair["attestation"] == ROOTED["leaves"][index]["attestation"]
        # The root does not travel: its hub and time are the attestation's.
        assert pair["attestation"]["hub"] == root["hub"]
        assert pair["attestation"]["attested_at"] == root["attested_at"]
        assert base64.b64decode(pair["proof"]) == b"".join(path(index, leaves))
        assert pair["root_signature"] == ROOTED["signed"][-1]["signature_b64"]
    proofs = [base64.b64decode(i["item"]["attestations"][0]["proof"]) for i in ROOTED["items"]]
    assert [len(proof) // 32 for proof in proofs] == [2, 2, 1]


def test_wire_py_parses_each_item_and_proves_each_attestation_under_the_signed_root():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    hub_a = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(HUBS["hub-a.example.org"]["public_key_hex"])
    )
    parsed = wire.parse_batch(ROOTED["batch"]["body"])
    assert parsed.problems == ()
    assert [i.digest for i in parsed.items] == [v["digest_hex"] for v in ROOTED["items"]]
    for item, vector in zip(parsed.items, ROOTED["items"], strict=True):
        assert independent_jcs(vector["item"]) == vector["canonical_utf8"]
        (attestation,) = item.attestations
        assert type(attestation) is RootedAttestation
        root = attestation.root()
        assert root == ROOTED["signed"][-1]["canonical_utf8"].encode()
        hub_a.verify(attestation.root_signature, root)


@pytest.mark.django_db
def test_hub_c_accepts_the_rooted_batch(settings):
    peer = hub_a_at_hub_c(settings)
    result = batch_receive(peer=peer, body=ROOTED["batch"]["body"], via="push")
    assert [r.as_dict() for r in result.results] == ROOTED["expected_results_at_hub_c"]
