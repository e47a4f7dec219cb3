"""Many Ed25519 verifications at once, beside the caller: ``SignatureChecks``, which the bulk
checks (``federation.contributions.checks``) and federation's receiving side queue each
signature on while they go on parsing, handed in chunks to the verification processes
(``federation.signature_processes``) or, where those are off, to a thread pool. One signature
alone is ``federation.signing.verify_signature``."""

import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from federation.signature_processes import VerificationJob, VerifierLost, shared_processes
from federation.signing import verify_signature


class SignatureChecks:
    """Ed25519 verifications run beside the caller while it goes on parsing: queued with ``add``
    in chunks, each chunk handed to the verification processes
    (``federation.signature_processes``: interpreters of their own, so verifying never waits for
    the caller's Python nor it for them), or, where they are turned off
    (``SIGNATURE_VERIFY_PROCESSES``) or could not be started, to a small thread pool (libsodium
    releases the GIL while it verifies). ``results`` returns one bool per check, in order."""

    chunk_size = 128

    def __init__(self) -> None:
        self._pending: list[tuple[Ed25519PublicKey, bytes, bytes]] = []
        self._jobs: list[VerificationJob | Future[list[bool]]] = []

    def add(self, public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
        self._pending.append((public_key, signature, message))
        if len(self._pending) >= self.chunk_size:
            self.submit()

    def submit(self) -> None:
        """Queue the checks added so far now (``results`` would otherwise verify the last partial
        chunk on the calling thread)."""
        if self._pending:
            self._jobs.append(_submitted(self._pending))
            self._pending = []

    def results(self) -> list[bool]:
        outcomes = [valid for job in self._jobs for valid in _outcome(job)]
        return outcomes + _verify_chunk(self._pending)


def _verify_chunk(checks: list[tuple[Ed25519PublicKey, bytes, bytes]]) -> list[bool]:
    return [
        verify_signature(public_key, signature, message)
        for public_key, signature, message in checks
    ]


def _submitted(
    checks: list[tuple[Ed25519PublicKey, bytes, bytes]],
) -> VerificationJob | Future[list[bool]]:
    processes = shared_processes(enabled=settings.SIGNATURE_VERIFY_PROCESSES)
    if processes is not None:
        try:
            return processes.submit(checks)
        except VerifierLost:
            processes.give_up()
    return _verification_pool().submit(_verify_chunk, checks)


def _outcome(job: VerificationJob | Future[list[bool]]) -> list[bool]:
    try:
        return job.result()
    except VerifierLost:  # a worker process failed: its jobs are verified here instead
        assert isinstance(job, VerificationJob)
        job.processes.give_up()
        return _verify_chunk(job.checks)


@functools.cache
def _verification_pool() -> ThreadPoolExecutor:
    # Created on first use in each process (never inherited across a fork).
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="ed25519")
