"""``verify_signature`` verifies with libsodium; OpenSSL (``cryptography``) must agree with it on
every signature an honest signer makes and on the usual forgeries."""

import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import verify_signature

# The order of the prime subgroup: a signature's S must be below it.
L = 2**252 + 27742317777372353535851937790883648493


def openssl_verifies(public_key, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def test_a_valid_signature_verifies_and_a_tampered_one_does_not():
    key = Ed25519PrivateKey.generate()
    message = b'{"kind":"concordat.contribution"}'
    signature = key.sign(message)
    assert verify_signature(key.public_key(), signature, message)
    assert not verify_signature(key.public_key(), signature, message + b" ")
    assert not verify_signature(Ed25519PrivateKey.generate().public_key(), signature, message)
    assert not verify_signature(key.public_key(), signature[:63], message)
    assert not verify_signature(key.public_key(), signature + b"\0", message)


def test_a_signature_whose_s_is_not_reduced_is_refused():
    # S + L satisfies the verification equation too: a malleable second spelling, refused.
    key = Ed25519PrivateKey.generate()
    message = b"message"
    signature = key.sign(message)
    s = int.from_bytes(signature[32:], "little") + L
    assert s < 2**256
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert not verify_signature(key.public_key(), malleated, message)
    assert not openssl_verifies(key.public_key(), malleated, message)


@pytest.mark.parametrize("seed", range(5))
def test_libsodium_and_openssl_agree_on_signatures_and_their_bit_flips(seed):
    rng = random.Random(seed)
    for _ in range(40):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        message = rng.randbytes(rng.randrange(0, 600))
        signature = key.sign(message)
        candidates = [(signature, message)]
        flipped = bytearray(signature)
        flipped[rng.randrange(64)] ^= 1 << rng.randrange(8)
        candidates.append((bytes(flipped), message))
        if message:
            changed = bytearray(message)
            changed[rng.randrange(len(message))] ^= 1 << rng.randrange(8)
            candidates.append((signature, bytes(changed)))
        for candidate_signature, candidate_message in candidates:
            expected = openssl_verifies(key.public_key(), candidate_signature, candidate_message)
            assert verify_signature(key.public_key(), candidate_signature, candidate_message) is (
                expected
            )
        assert verify_signature(key.public_key(), signature, message)
