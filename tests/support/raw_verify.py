"""The machine's raw Ed25519 verification rate, the yardstick of the speed targets (issue 28).

The hub's own verifier (``federation.signing.verify_signature``: libsodium) on one thread, best
of three passes over the same signatures, in verifications per second. The ingest target is a
fraction of it; the federation figures are printed beside it, since how fast this machine runs
moves every figure (docs/architecture.md, "Speed"). Measured beside running hubs, it first waits
for the machine to be quiet (their workers may still be sequencing what a run left them)."""

import os
import time
from pathlib import Path

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


def busy_fraction(seconds: float = 0.5) -> float:
    """The share of the machine's CPU time not idle over the next ``seconds`` (``/proc/stat``)."""

    def sample() -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal; guest time is counted in user already.
        fields = [int(field) for field in Path("/proc/stat").read_text().split()[1:9]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    total, idle = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    return 1 - (idle_after - idle) / max(total_after - total, 1)


def wait_until_quiet(*, below: float = 0.1, timeout: float = 60.0) -> float:
    """Wait until the machine's CPU is busy less than ``below`` of the time over half a second,
    or ``timeout`` seconds have passed; returns the last share seen."""
    deadline = time.monotonic() + timeout
    busy = busy_fraction()
    while busy >= below and time.monotonic() < deadline:
        busy = busy_fraction()
    return busy


def sample_verify_rate(count: int = 5_000) -> float:
    """``verify_rate`` over ``count`` fresh signatures of random messages."""
    private_key = Ed25519PrivateKey.generate()
    messages = [os.urandom(SAMPLE_MESSAGE_BYTES) for _ in range(count)]
    pairs = [(private_key.sign(message), message) for message in messages]
    return verify_rate(private_key.public_key(), pairs)
