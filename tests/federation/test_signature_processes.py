"""Bulk checks verify signatures in worker processes (federation/signature_processes.py): their
answers are ``verify_signature``'s, in order, whichever thread reads them; a worker that dies or
cannot start hands the work to the thread pool, for good; and the setting turns them off."""

import os
import random
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation import signature_processes
from federation.signature_checks import SignatureChecks
from federation.signature_processes import (
    VerificationProcesses,
    VerifierLost,
    pack_job,
    verify_job,
)
from federation.signing import verify_signature

L = 2**252 + 27742317777372353535851937790883648493


def _checks(count: int, seed: int) -> list[tuple]:
    """Signed messages of two keys, about a third of them spoiled in a different way each."""
    rng = random.Random(seed)
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    checks = []
    for index in range(count):
        key = keys[index % 2]
        message = rng.randbytes(rng.randrange(0, 400))
        signature = key.sign(message)
        spoil = index % 9
        if spoil == 1:
            signature = signature[:5] + bytes([signature[5] ^ 4]) + signature[6:]
        elif spoil == 2:
            message += b" "
        elif spoil == 3:
            key = keys[(index + 1) % 2]
        elif spoil == 4:
            signature = signature[:63]
        elif spoil == 5:  # S + L: the same equation, a second spelling, refused
            s = int.from_bytes(signature[32:], "little") + L
            signature = signature[:32] + s.to_bytes(32, "little")
        checks.append((key.public_key(), signature, message))
    return checks


def _expected(checks) -> list[bool]:
    return [verify_signature(key, signature, message) for key, signature, message in checks]


@pytest.fixture
def processes():
    started = VerificationProcesses(2)
    yield started
    started.close()


@pytest.fixture
def fresh_shared(monkeypatch):
    """This process's shared processes as if none had been started yet (and closed after)."""
    monkeypatch.setattr(signature_processes._Shared, "started", None)
    monkeypatch.setattr(signature_processes._Shared, "given_up", False)
    yield signature_processes._Shared
    if signature_processes._Shared.started is not None:
        signature_processes._Shared.started.close()


def test_a_job_answers_as_verify_signature_does():
    checks = _checks(90, seed=1)
    expected = _expected(checks)
    assert True in expected and False in expected
    answer = verify_job(pack_job(checks)[16:], len(checks))
    assert [byte == 1 for byte in answer] == expected


def test_the_workers_answer_each_job_in_order(processes):
    checks = _checks(300, seed=2)
    jobs = [processes.submit(checks[start : start + 64]) for start in range(0, 300, 64)]
    # Read out of order: answers written before a job's are kept for their own jobs.
    answers = {index: job.result() for index, job in reversed(list(enumerate(jobs)))}
    assert [valid for index in range(len(jobs)) for valid in answers[index]] == _expected(checks)


def test_jobs_of_several_threads_each_get_their_own_answers(processes):
    outcomes: dict[int, bool] = {}
    failures = []

    def submit_and_read(seed: int) -> None:
        checks = _checks(120, seed=seed)
        jobs = [processes.submit(checks[start : start + 40]) for start in range(0, 120, 40)]
        if [valid for job in jobs for valid in job.result()] != _expected(checks):
            failures.append(seed)
        outcomes[seed] = True

    threads = [threading.Thread(target=submit_and_read, args=(seed,)) for seed in range(10, 16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 6 and not failures


def test_a_worker_exits_once_its_input_is_closed(processes):
    workers = [worker.process for worker in processes._workers]
    processes.close()
    assert [process.wait(timeout=10) for process in workers] == [0, 0]


def test_signature_checks_use_the_processes_when_on(settings, fresh_shared):
    settings.SIGNATURE_VERIFY_PROCESSES = True
    checks = SignatureChecks()
    items = _checks(600, seed=3)
    for item in items:
        checks.add(*item)
    checks.submit()
    assert fresh_shared.started is not None
    assert all(isinstance(job, signature_processes.VerificationJob) for job in checks._jobs)
    assert checks.results() == _expected(items)


def test_signature_checks_use_the_thread_pool_when_off(settings, fresh_shared):
    settings.SIGNATURE_VERIFY_PROCESSES = False
    checks = SignatureChecks()
    items = _checks(300, seed=4)
    for item in items:
        checks.add(*item)
    checks.submit()
    assert fresh_shared.started is None
    assert not any(isinstance(job, signature_processes.VerificationJob) for job in checks._jobs)
    assert checks.results() == _expected(items)


def test_a_worker_that_dies_hands_its_jobs_to_the_threads_for_good(settings, fresh_shared):
    settings.SIGNATURE_VERIFY_PROCESSES = True
    checks = SignatureChecks()
    items = _checks(600, seed=5)
    for item in items[:300]:
        checks.add(*item)
    started = fresh_shared.started
    for worker in started._workers:
        worker.process.kill()
        worker.process.wait(timeout=10)
    for item in items[300:]:
        checks.add(*item)
    checks.submit()
    assert checks.results() == _expected(items)
    assert fresh_shared.started is None and fresh_shared.given_up
    later = SignatureChecks()
    later.add(*items[0])
    later.submit()
    assert not isinstance(later._jobs[0], signature_processes.VerificationJob)
    assert later.results() == _expected(items[:1])


def test_processes_that_cannot_start_leave_the_work_to_the_threads(
    settings, fresh_shared, monkeypatch
):
    def refused(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(signature_processes.subprocess, "Popen", refused)
    settings.SIGNATURE_VERIFY_PROCESSES = True
    checks = SignatureChecks()
    items = _checks(300, seed=6)
    for item in items:
        checks.add(*item)
    checks.submit()
    assert fresh_shared.given_up and fresh_shared.started is None
    assert checks.results() == _expected(items)


def test_a_forked_child_starts_its_own_processes(processes, fresh_shared):
    fresh_shared.started = processes
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports by its exit status)
        os._exit(0 if signature_processes._Shared.started is None else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fresh_shared.started = None


def test_an_answer_that_names_another_job_is_never_taken_for_this_one(processes):
    checks = _checks(20, seed=7)
    job = processes.submit(checks)
    job.number += 1  # as if the worker had fallen out of step
    with pytest.raises(VerifierLost):
        job.result()
    assert processes.lost  # not used again: SignatureChecks verifies elsewhere
