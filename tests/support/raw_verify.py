"""The machine's raw Ed25519 verification rate, the yardstick of the speed targets (issue 28).

The hub's own verifier (``federation.signing.verify_signature``: libsodium) on one thread, best
of three passes over the same signatures, in verifications per second. The ingest target is a
fraction of it; the federation figures are printed beside it, since how fast this machine runs
moves every figure (docs/architecture.md, "Speed")."""

import os
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from federation.signing import verify_signature

# About the size of a contribution's canonical bytes.
SAMPLE_MESSAGE_BYTES = 330


def verify_rate(public_key: Ed25519PublicKey, pairs: list[tuple[bytes, bytes]]) -> float:
    """Verifications per second of ``pairs`` (signature, message), each valid under
    ``public_key``: the best of three passes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        valid = all(
            verify_signature(public_key, signature, message) for signature, message in pairs
        )
        best = min(best, time.perf_counter() - started)
        assert valid, "a sample signature failed to verify"
    return len(pairs) / best


def sample_verify_rate(count: int = 5_000) -> float:
    """``verify_rate`` over ``count`` fresh signatures of random messages."""
    private_key = Ed25519PrivateKey.generate()
    messages = [os.urandom(SAMPLE_MESSAGE_BYTES) for _ in range(count)]
    pairs = [(private_key.sign(message), message) for message in messages]
    return verify_rate(private_key.public_key(), pairs)
