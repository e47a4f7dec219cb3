"""The published signing vectors (docs/signing-vectors.json) hold for the hub's own code and for an
independent implementation: PyNaCl (libsodium) for Ed25519 and a minimal RFC 8785 writer below
for the canonical bytes."""

import base64
import binascii
import hashlib
import json

import nacl.exceptions
import nacl.signing
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.canonical import canonical_bytes
from federation.signing import (
    MalformedContribution,
    decode_signature,
    parse_contribution,
    parse_key_registration,
    sign_contribution,
    sign_key_registration,
    verify_key_registration,
    verify_signature,
)
from members.models import key_id_for
from tests.support.jcs import independent_jcs
from tests.support.signing_vectors_gen import VECTORS_PATH, render

ALL_VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VECTORS = [v for v in ALL_VECTORS if "contribution" in v]
VALID = [v for v in VECTORS if v["valid"]]
REGISTRATIONS = [v for v in ALL_VECTORS if "key_registration" in v]
FRAME_LISTS = [
    v for v in ALL_VECTORS if "vpdq_frames" in v
]  # tests/federation/video/test_vpdq_vectors.py


def by_id(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


def server_verifies(vector) -> bool:
    """The hub's path: parse (which computes the canonical bytes), decode, verify."""
    parsed = parse_contribution(vector["contribution"])
    try:
        signature = decode_signature(vector["signature_b64"])
    except MalformedContribution:
        return False
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key_hex"]))
    return verify_signature(public_key, signature, parsed.canonical)


def pynacl_verifies(vector) -> bool:
    try:
        signature = base64.b64decode(vector["signature_b64"], validate=True)
    except binascii.Error:
        return False
    if len(signature) != 64:
        return False
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(vector["public_key_hex"]))
    try:
        verify_key.verify(independent_jcs(vector["contribution"]).encode(), signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def test_vectors_file_is_exactly_what_the_generator_writes():
    assert VECTORS_PATH.read_text(encoding="utf-8") == render()


def test_every_vector_is_a_contribution_a_key_registration_or_a_frame_list():
    assert len(VECTORS) + len(REGISTRATIONS) + len(FRAME_LISTS) == len(ALL_VECTORS)
    assert not any("contribution" in v and "key_registration" in v for v in ALL_VECTORS)
    assert len({v["id"] for v in ALL_VECTORS}) == len(ALL_VECTORS)


def test_vectors_cover_valid_and_tampered_cases():
    ids = {v["id"] for v in VECTORS}
    assert {"pdq-add", "md5-add", "sha256-add", "pdq-retract", "pdq-incident-quality"} <= ids
    assert {"non-ascii-hub", "uppercase-hex-value"} <= ids
    assert {"tampered-value", "wrong-key", "field-added", "signature-truncated"} <= ids
    assert {"signature-bit-flipped"} <= ids
    assert len(ids) == len(VECTORS)
    for vector in VECTORS:
        assert vector["description"]
        assert ("reason" in vector) is (not vector["valid"])


@by_id(VECTORS)
def test_public_key_and_key_id_derive_from_the_seed(vector):
    seed = bytes.fromhex(vector["seed_hex"])
    assert len(seed) == 32
    nacl_key = nacl.signing.SigningKey(seed)
    assert bytes(nacl_key.verify_key).hex() == vector["public_key_hex"]
    public_key = bytes.fromhex(vector["public_key_hex"])
    assert key_id_for(public_key) == vector["key_id"]
    assert hashlib.sha256(public_key).digest()[:16].hex() == vector["key_id"]


@by_id(VECTORS)
def test_canonical_bytes_are_the_published_string(vector):
    canonical = canonical_bytes(vector["contribution"])
    assert canonical == vector["canonical_utf8"].encode("utf-8")
    assert independent_jcs(vector["contribution"]) == vector["canonical_utf8"]
    assert hashlib.sha256(canonical).hexdigest() == vector["canonical_sha256_hex"]


@by_id(VECTORS)
def test_every_vector_is_well_formed_so_invalid_ones_fail_on_the_signature_alone(vector):
    parsed = parse_contribution(vector["contribution"])
    assert parsed.canonical == vector["canonical_utf8"].encode("utf-8")
    assert parsed.key_id == vector["key_id"]
    assert parsed.content_hash == vector["canonical_sha256_hex"]


@by_id(VECTORS)
def test_hub_verifier_agrees_with_the_vector(vector):
    assert server_verifies(vector) is vector["valid"]


@by_id(VECTORS)
def test_pynacl_agrees_with_the_vector(vector):
    assert pynacl_verifies(vector) is vector["valid"]


def openssl_verifies(vector) -> bool:
    """OpenSSL's Ed25519 (cryptography's own ``verify``) over the independent JCS bytes: the hub
    verifies with libsodium, so this is the second library."""
    try:
        signature = base64.b64decode(vector["signature_b64"], validate=True)
    except binascii.Error:
        return False
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key_hex"]))
    try:
        public_key.verify(signature, independent_jcs(vector["contribution"]).encode())
    except InvalidSignature:
        return False
    return True


@by_id(VECTORS)
def test_openssl_agrees_with_the_vector(vector):
    assert openssl_verifies(vector) is vector["valid"]


@by_id(VALID)
def test_signing_with_the_seed_reproduces_the_signature(vector):
    seed = bytes.fromhex(vector["seed_hex"])
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    assert sign_contribution(private_key, vector["contribution"]) == vector["signature_b64"]
    signed = nacl.signing.SigningKey(seed).sign(vector["canonical_utf8"].encode("utf-8"))
    assert base64.b64encode(signed.signature).decode() == vector["signature_b64"]
    assert len(vector["signature_b64"]) == 88


@by_id(VALID)
def test_valid_vector_parses_with_its_fields(vector):
    document = vector["contribution"]
    parsed = parse_contribution(document)
    assert str(parsed.uuid) == document["uuid"]
    assert parsed.hub == document["hub"]
    assert parsed.action == document["action"]
    assert parsed.labels == tuple(document["labels"])
    assert parsed.value == document["signal"]["value"].lower()


def test_uppercase_value_is_signed_as_sent_and_normalised_for_the_entry():
    (vector,) = [v for v in VECTORS if v["id"] == "uppercase-hex-value"]
    value = vector["contribution"]["signal"]["value"]
    assert value == value.upper() and value != value.lower()
    assert value in vector["canonical_utf8"]
    assert parse_contribution(vector["contribution"]).value == value.lower()


def test_independent_jcs_sorts_keys_by_utf16_code_units_like_the_hub():
    # U+FB33 sorts before U+1F600 by code point but after it by UTF-16 code unit (0xD83D).
    document = {"\U0001f600": 1, "\ufb33": 2, "a": 3, "é": 4}
    assert independent_jcs(document).encode() == canonical_bytes(document)
    assert independent_jcs(document) == '{"a":3,"é":4,"\U0001f600":1,"\ufb33":2}'


# --- Key registrations (proof of possession) ----------------------------------------------------


def server_verifies_registration(vector) -> bool:
    """The hub's path: parse (canonical bytes, public key), check the key id, verify."""
    parsed = parse_key_registration(vector["key_registration"])
    try:
        signature = decode_signature(vector["signature_b64"])
    except MalformedContribution:
        return False
    return parsed.key_id == parsed.derived_key_id and verify_key_registration(parsed, signature)


def test_registration_vectors_cover_a_proof_and_its_forgeries():
    ids = {v["id"] for v in REGISTRATIONS}
    assert {"key-registration", "key-registration-second-key"} <= ids
    assert {"key-registration-signed-by-another-key", "key-registration-member-changed"} <= ids
    for vector in REGISTRATIONS:
        assert vector["description"]
        assert ("reason" in vector) is (not vector["valid"])


@by_id(REGISTRATIONS)
def test_registration_names_the_key_it_registers(vector):
    document = vector["key_registration"]
    assert document["kind"] == "concordat.key" and document["v"] == 1
    seed = bytes.fromhex(vector["seed_hex"])
    public_key = bytes(nacl.signing.SigningKey(seed).verify_key)
    assert public_key.hex() == vector["public_key_hex"]
    assert base64.b64decode(document["public_key"]) == public_key
    assert document["key_id"] == key_id_for(public_key) == vector["key_id"]
    assert parse_key_registration(document).public_key == public_key


@by_id(REGISTRATIONS)
def test_registration_canonical_bytes_are_the_published_string(vector):
    canonical = canonical_bytes(vector["key_registration"])
    assert canonical == vector["canonical_utf8"].encode("utf-8")
    assert independent_jcs(vector["key_registration"]) == vector["canonical_utf8"]
    assert hashlib.sha256(canonical).hexdigest() == vector["canonical_sha256_hex"]
    assert parse_key_registration(vector["key_registration"]).canonical == canonical


@by_id(REGISTRATIONS)
def test_hub_verifier_agrees_with_the_registration_vector(vector):
    assert server_verifies_registration(vector) is vector["valid"]


@by_id(REGISTRATIONS)
def test_pynacl_agrees_with_the_registration_vector(vector):
    # Proof of possession: the signature must verify under the key *in* the object.
    public_key = base64.b64decode(vector["key_registration"]["public_key"])
    verify_key = nacl.signing.VerifyKey(public_key)
    message = independent_jcs(vector["key_registration"]).encode()
    try:
        verify_key.verify(message, base64.b64decode(vector["signature_b64"]))
    except nacl.exceptions.BadSignatureError:
        verified = False
    else:
        verified = True
    assert verified is vector["valid"]


@by_id([v for v in REGISTRATIONS if v["valid"]])
def test_signing_a_registration_with_its_seed_reproduces_the_signature(vector):
    private_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"]))
    document = vector["key_registration"]
    assert sign_key_registration(private_key, document) == vector["signature_b64"]
    signed = nacl.signing.SigningKey(bytes.fromhex(vector["seed_hex"])).sign(
        vector["canonical_utf8"].encode("utf-8")
    )
    assert base64.b64encode(signed.signature).decode() == vector["signature_b64"]
