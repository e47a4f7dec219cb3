"""A drain of several rounds claims and builds the next round while one is out
(federation/propagation/delivery.py, ``_pipelined``), and keeps what a lane promises: the next
round is posted only once the one before is answered, an entry's rows never travel beside each
other in two rounds, a round built behind one that fails is put back unsent, and an ordinary round
waits while the peer's incident lane is busy."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from federation.lifecycle import entries_transition
from federation.propagation import delivery
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import OutboxItem
from tests.support.sending import ACTOR, accept_all, make_peer, rows, vetted_entry


@pytest.fixture
def bravo(db, receiver):
    return make_peer("bravo.hub", url=receiver.url)


@pytest.fixture
def small_rounds(settings, statements):
    settings.FEDERATION_BATCH_SIZE = 2
    settings.FEDERATION_DRAIN_PARALLEL = 1


@pytest.fixture
def claims(monkeypatch):
    """Each claim's ``skip`` (the rows of the round out), in order."""
    seen: list[tuple[int, ...]] = []
    claim = delivery._claim

    def watched(peer, lane, skip=()):
        seen.append(tuple(skip))
        return claim(peer, lane, skip=skip)

    monkeypatch.setattr(delivery, "_claim", watched)
    return seen


def signals(receiver) -> list[list[str]]:
    return [
        [item["attestations"][-1]["attestation"]["signal"]["value"] for item in b["batch"]["items"]]
        for b in receiver.batches
    ]


def test_the_next_round_is_claimed_while_one_is_out_and_posted_once_it_is_answered(
    acme_submitter, bravo, receiver, small_rounds, claims
):
    entries = [vetted_entry(acme_submitter) for _ in range(6)]
    out, lock = [0], threading.Lock()
    most = []

    def answer(body):
        # The round after this one is claimed before this one is answered (a drain that
        # claimed only afterwards would time out here), and no two rounds are out at once.
        with lock:
            out[0] += 1
            most.append(out[0])
        assert _wait(lambda: len(claims) > len(receiver.batches))
        with lock:
            out[0] -= 1
        return 200, accept_all(body)

    receiver.answer = answer

    result = outbox_drain(peer_id=bravo.pk, lane="normal", max_rounds=10)

    assert (result.batches, result.delivered, result.failed) == (3, 6, 0)
    assert signals(receiver) == [[e.value for e in entries[i : i + 2]] for i in (0, 2, 4)]
    assert most == [1, 1, 1]
    ids = [r.pk for r in rows()]
    assert claims[:4] == [(), tuple(ids[0:2]), tuple(ids[2:4]), tuple(ids[4:6])]
    assert {(r.state, r.attempts, r.claimed_until) for r in rows()} == {("delivered", 1, None)}


def test_a_round_built_behind_one_that_fails_is_put_back_unsent(
    acme_submitter, bravo, receiver, small_rounds, claims
):
    for _ in range(4):
        vetted_entry(acme_submitter)

    def answer(body):
        assert _wait(lambda: len(claims) >= 2)  # the next round was claimed and built
        return 503, {"error": {"code": "unavailable", "message": "down"}}

    receiver.answer = answer

    result = outbox_drain(peer_id=bravo.pk, lane="normal", max_rounds=10)

    assert (result.batches, result.delivered, result.failed) == (1, 0, 2)
    assert len(receiver.batches) == 1
    first, second, third, fourth = rows()
    assert {(r.attempts, r.last_error) for r in (first, second)} == {
        (1, "HTTP 503 unavailable: down")
    }
    # The round behind it: as if never claimed, and the lane waits for its head.
    assert {(r.state, r.attempts, r.claimed_until) for r in (third, fourth)} == {
        ("pending", 0, None)
    }
    assert not result.more


def test_an_entrys_row_waits_while_its_entry_has_a_round_out(
    acme_submitter, bravo, receiver, small_rounds, claims
):
    entries = [vetted_entry(acme_submitter) for _ in range(3)]
    entries_transition(entry_ids=[entries[0].pk], to="disputed", actor=ACTOR)
    # Rows: add 0, add 1, add 2, the dispute of entry 0. Round 1: adds 0 and 1. Claimed while
    # it is out: add 2 and the dispute, which waits (its entry is out) and is put back.
    posted_after_answers: list[int] = []
    answered = []

    def answer(body):
        posted_after_answers.append(len(answered))
        answered.append(body)
        return 200, accept_all(body)

    receiver.answer = answer

    result = outbox_drain(peer_id=bravo.pk, lane="normal", max_rounds=10)

    assert (result.delivered, result.failed) == (4, 0)
    assert signals(receiver) == [
        [entries[0].value, entries[1].value],
        [entries[2].value],
        [entries[0].value],
    ]
    assert [item["type"] for item in receiver.batches[2]["batch"]["items"]] == ["entry"]
    assert posted_after_answers == [0, 1, 2]
    assert {(r.state, r.attempts) for r in rows()} == {("delivered", 1)}


def test_an_ordinary_round_built_behind_another_waits_while_the_peers_incident_lane_is_busy(
    acme_submitter, bravo, receiver, small_rounds, monkeypatch
):
    for _ in range(5):
        vetted_entry(acme_submitter)
    # The last row stands for an incident item another worker has in flight to the same peer.
    incident = rows()[-1]
    OutboxItem.objects.filter(pk=incident.pk).update(
        lane="incident", claimed_until=timezone.now() + timedelta(seconds=60)
    )
    monkeypatch.setattr(delivery, "_INCIDENT_YIELD_SECONDS", 0.5)
    arrived = []

    def answer(body):
        arrived.append(time.monotonic())
        return 200, accept_all(body)

    receiver.answer = answer

    result = outbox_drain(peer_id=bravo.pk, lane="normal", max_rounds=10)

    assert (result.delivered, result.failed) == (4, 0)
    assert len(arrived) == 2 and arrived[1] - arrived[0] >= 0.5  # it waited, up to the bound
    assert OutboxItem.objects.get(pk=incident.pk).state == "pending"  # not the normal lane's


def _wait(condition, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()
