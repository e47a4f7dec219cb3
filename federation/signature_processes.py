"""Ed25519 verification in long-lived worker processes, for the bulk checks
(``federation.signature_checks.SignatureChecks``; docs/architecture.md, "Ingest").

A verification thread of the web process releases the GIL inside libsodium but must take it back
for every signature (the Python around each call), against the request's thread, which holds it
while it parses and builds rows: the two take turns, and each wait can last the interpreter's
switch interval. A worker process has an interpreter of its own, so its verifications never wait
for the request's Python, nor the request's Python for them; the web process only packs each
chunk into one write and reads one byte per check back.

The workers are started with ``subprocess`` (a new interpreter, ``python -m
federation.signature_processes``: never a ``fork`` of a threaded server process, and allowed from
a Celery child, which ``multiprocessing`` refuses), import nothing but PyNaCl, and exit when the
web process closes their input (it exited, or dropped the pool). This module imports no Django for
the same reason.

The wire, both ways over the worker's standard input and output: a job is a header (the job's
number, its number of checks, the bytes that follow) and per check its 32-byte public key, the
message's length, the 64-byte signature and the message (signature and message adjacent:
libsodium's signed-message form, taken with one slice); the answer repeats the job's number and
count, then one byte per check, 1 when the signature verifies. Answers come back in the order
the jobs were written; one that does not name the job expected (a worker out of step) makes the
worker lost, and its jobs are verified elsewhere.
"""

import contextlib
import fcntl
import itertools
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

_JOB = struct.Struct("<QII")  # job number, checks, payload bytes
_ANSWER = struct.Struct("<QI")  # job number, checks; then one byte per check
_CHECK = struct.Struct("<32sI")  # public key, message length; then signature and message
logger = logging.getLogger(__name__)
_ROOT = Path(__file__).resolve().parent.parent
# The pipe to a worker holds this much (Linux, unprivileged up to /proc/sys/fs/pipe-max-size), so
# that writing a job never waits for the worker to finish the one before: a chunk of 1,000
# contributions is about 450 kB.
_PIPE_BYTES = 1 << 20

Check = tuple[Any, bytes, bytes]  # (Ed25519PublicKey, 64-byte signature, message)


class VerifierLost(RuntimeError):
    """A worker process failed (exited, or its pipe broke): its jobs must be verified elsewhere."""


class VerificationJob:
    """One job written to a worker: ``result()`` reads its answer (one bool per check)."""

    __slots__ = ("_outcome", "_worker", "checks", "number", "processes")

    def __init__(
        self,
        checks: Sequence[Check],
        number: int,
        processes: "VerificationProcesses",
        worker: "_Worker",
    ) -> None:
        self.checks = checks
        self.number = number
        self.processes = processes
        self._worker = worker
        self._outcome: list[bool] | None = None

    def result(self) -> list[bool]:
        if self._outcome is None:
            self._worker.read_until(self)
        assert self._outcome is not None
        return self._outcome


class _Worker:
    """One worker process and the jobs written to it whose answers are not read yet."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_ROOT,
        )
        for pipe in (self.process.stdin, self.process.stdout):
            # Not on Linux, or above the limit: writes may wait for the worker.
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._written: deque[VerificationJob] = deque()
        self.lost = False

    def write(self, job: VerificationJob, payload: bytes) -> None:
        with self._write_lock:
            if self.lost:
                raise VerifierLost("the verification process is gone")
            try:
                self.process.stdin.write(payload)  # type: ignore[union-attr]
                self.process.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError) as exc:  # the worker exited, or the pool was closed
                self.lost = True
                raise VerifierLost("the verification process is gone") from exc
            except BaseException:  # stopped half way (raised into this thread): out of step
                self.lost = True
                raise
            self._written.append(job)

    def read_until(self, job: VerificationJob) -> None:
        """Read answers in the order their jobs were written, up to ``job``'s (another thread may
        be reading the ones before it, or may have read it already)."""
        with self._read_lock:
            while job._outcome is None:
                if self.lost:
                    raise VerifierLost("the verification process is gone")
                # Not under the write lock: a writer blocked on a full pipe holds it until the
                # worker has read enough, and the answer wanted here may be in already. A job is
                # appended once written (deque operations are atomic), and only the reader, under
                # the read lock, removes one.
                head = self._written.popleft()
                try:
                    answer = _read_exactly(
                        self.process.stdout,  # type: ignore[arg-type]
                        _ANSWER.size + len(head.checks),
                    )
                except (OSError, ValueError):  # closed meanwhile by another thread
                    answer = None
                except BaseException:  # stopped half way (raised into this thread): out of step
                    self.lost = True
                    raise
                # Each answer names its job: an answer out of step is never taken for another's.
                if answer is None or _ANSWER.unpack_from(answer) != (
                    head.number,
                    len(head.checks),
                ):
                    self.lost = True
                    raise VerifierLost("the verification process exited or is out of step")
                head._outcome = [byte == 1 for byte in answer[_ANSWER.size :]]

    def close(self) -> None:
        self.lost = True
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
        # Reaped, not left a zombie: it ends once it has answered the job it holds (milliseconds).
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)


class VerificationProcesses:
    """``size`` worker processes; each job goes to the next worker in turn."""

    def __init__(self, size: int) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(size):
                self._workers.append(_Worker())
        except OSError:
            self.close()
            raise
        self._turn = itertools.count()
        self._numbers = itertools.count(int.from_bytes(os.urandom(4), "little"))

    @property
    def lost(self) -> bool:
        return any(worker.lost for worker in self._workers)

    def give_up(self) -> None:
        """Stop using these processes for the life of this process (one failed): the callers'
        thread pool verifies instead."""
        with _Shared.lock:
            if _Shared.started is self:
                logger.warning("a verification process failed: verifying on threads from now on")
                _Shared.started = None
                _Shared.given_up = True
        self.close()

    def submit(self, checks: Sequence[Check]) -> VerificationJob:
        """Write ``checks`` to a worker; raises ``VerifierLost`` if that worker is gone."""
        worker = self._workers[next(self._turn) % len(self._workers)]
        number = next(self._numbers)
        job = VerificationJob(checks, number, self, worker)
        worker.write(job, pack_job(checks, number=number))
        return job

    def close(self) -> None:
        """Close the workers' pipes: each exits once it has answered what it was given."""
        for worker in self._workers:
            worker.close()


class _Shared:
    """This process's verification processes: started on first use, given up (for good) if they
    cannot be started or one fails."""

    lock = threading.Lock()
    started: VerificationProcesses | None = None
    given_up = False


def shared_processes(*, enabled: bool) -> VerificationProcesses | None:
    """This process's verification processes (one per core), started now if need be; None when
    not ``enabled``, or given up."""
    if _Shared.started is not None or _Shared.given_up or not enabled:
        return _Shared.started if enabled else None
    with _Shared.lock:
        if _Shared.started is None and not _Shared.given_up:
            try:
                _Shared.started = VerificationProcesses(os.cpu_count() or 2)
            except OSError:
                logger.warning("verification processes could not start: verifying on threads")
                _Shared.given_up = True
    return _Shared.started


def _forget_after_fork() -> None:
    # A forked child shares its parent's pipes to the workers: it starts its own if it verifies.
    _Shared.lock = threading.Lock()
    _Shared.started = None
    _Shared.given_up = False


os.register_at_fork(after_in_child=_forget_after_fork)


def pack_job(checks: Sequence[Check], *, number: int = 0) -> bytes:
    """The wire form of a job (module docstring). A signature that is not 64 bytes (which no
    check accepts) is sent as 64 zero bytes, which never verify."""
    parts = []
    last_key = last_raw = None
    for public_key, signature, message in checks:
        if public_key is not last_key:  # a chunk's checks are mostly of one key
            last_key, last_raw = public_key, public_key.public_bytes_raw()
        parts.append(_CHECK.pack(last_raw, len(message)))
        parts.append(signature if len(signature) == 64 else bytes(64))
        parts.append(message)
    payload = b"".join(parts)
    return _JOB.pack(number, len(checks), len(payload)) + payload


def signed_message_valid(signed: bytes, public_key: bytes) -> bool:
    """Whether ``signed`` (a 64-byte signature, then the message) verifies under the 32-byte
    ``public_key``: libsodium's ``crypto_sign_open``, the one verification of a member's
    signature, here and on the threads of ``federation.signing.verify_signature``."""
    try:
        crypto_sign_open(signed, public_key)
    except BadSignatureError:
        return False
    return True


def verify_job(payload: bytes, count: int) -> bytearray:
    """One byte per check of a job's payload: 1 when its signature verifies."""
    answer = bytearray(count)
    offset = 0
    unpack = _CHECK.unpack_from
    for index in range(count):
        public_key, length = unpack(payload, offset)
        start = offset + _CHECK.size
        offset = start + 64 + length
        if signed_message_valid(payload[start:offset], public_key):
            answer[index] = 1
    return answer


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes from ``stream``, or None if it ends first."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """A worker's loop: answer each job read from ``requests`` until it ends."""
    while (header := _read_exactly(requests, _JOB.size)) is not None:
        number, count, size = _JOB.unpack(header)
        payload = _read_exactly(requests, size)
        if payload is None:
            return
        answers.write(_ANSWER.pack(number, count) + verify_job(payload, count))
        answers.flush()


if __name__ == "__main__":
    # Interrupts are the web process's to handle; a worker ends when its input does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
