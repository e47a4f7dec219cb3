"""``nudge_soon``: a nudge sent by a sender thread, not by the caller, with asks made during a
send coalesced into one more send after it (federation/enqueue.py)."""

import threading

import pytest
from django.db import transaction

from federation import enqueue
from federation.enqueue import TaskName, nudge_soon
from federation.matching.services import Signal, match_answer

TASK = TaskName.SEQUENCE_AUDIT_LOG


@pytest.fixture
def sends(monkeypatch):
    """The sends ``nudge`` would make: (task, thread name), the first held until released."""
    made: list[tuple[str, str]] = []
    release = threading.Event()
    sent = threading.Semaphore(0)

    def nudge(name):
        made.append((name, threading.current_thread().name))
        if len(made) == 1:
            release.wait(5)
        sent.release()

    monkeypatch.setattr(enqueue, "nudge", nudge)
    monkeypatch.setattr(enqueue, "_soon_senders", {})
    return made, release, sent


def test_asks_made_during_a_send_are_one_more_send(sends):
    made, release, sent = sends
    nudge_soon(TASK)
    for _ in range(50):  # wait until the first send is under way
        if made:
            break
        threading.Event().wait(0.01)
    for _ in range(5):
        nudge_soon(TASK)
    release.set()
    assert sent.acquire(timeout=5) and sent.acquire(timeout=5)
    assert not sent.acquire(timeout=0.2)
    assert made == [(TASK, f"nudge-soon:{TASK}")] * 2


def test_asks_made_within_the_linger_share_one_send(sends, monkeypatch):
    made, release, sent = sends
    release.set()
    monkeypatch.setattr(enqueue, "NUDGE_SOON_LINGER", 0.2)
    for _ in range(4):  # one every 40 ms, all within the first one's linger
        nudge_soon(TASK)
        threading.Event().wait(0.04)
    assert sent.acquire(timeout=5)
    assert not sent.acquire(timeout=0.4)
    assert len(made) == 1


@pytest.mark.django_db(transaction=True)
def test_a_match_request_asks_for_sequencing_without_waiting_for_the_broker(sends, globex_reviewer):
    made, release, sent = sends
    release.set()
    assert transaction.get_autocommit()

    match_answer(actor=globex_reviewer.actor, signals=[Signal("md5", "a" * 32)], threshold=31)

    assert sent.acquire(timeout=5)
    assert made == [(TASK, f"nudge-soon:{TASK}")]  # sent by the sender thread, after the commit
