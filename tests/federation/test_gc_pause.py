"""Python's cycle collector is paused for a bulk submission, a received federation batch and a
sender's round (federation/gc_pause.py), and is on again once each has ended, whatever its end;
blocks on several threads share the pause, and the last of them to end turns it back on."""

import gc
import threading

import pytest

from federation.gc_pause import cycle_collection_paused

BULK = "/api/v1/contributions/bulk/"


def test_the_collector_is_off_inside_and_on_again_after():
    assert gc.isenabled()
    with cycle_collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_inner_block_leaves_it_to_the_outer_one_to_turn_it_back_on():
    with cycle_collection_paused():
        with cycle_collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_is_turned_back_on_when_the_block_fails():
    with pytest.raises(RuntimeError), cycle_collection_paused():
        raise RuntimeError("the write failed")
    assert gc.isenabled()


def test_a_block_on_another_thread_does_not_turn_it_on_under_the_first():
    seen = []
    with cycle_collection_paused():
        worker = threading.Thread(target=lambda: seen.append(_inside_a_block()))
        worker.start()
        worker.join()
        assert not gc.isenabled()
    assert seen == [False] and gc.isenabled()


def test_the_first_block_ending_leaves_it_off_for_one_still_running():
    """Two requests' blocks overlapping on two threads, the first in ending first: the collector
    stays off until the second has ended too."""
    entered, release, ended = threading.Event(), threading.Event(), []

    def second():
        with cycle_collection_paused():
            entered.set()
            release.wait(5)
            ended.append(gc.isenabled())

    worker = threading.Thread(target=second)
    with cycle_collection_paused():
        worker.start()
        assert entered.wait(5)
    assert not gc.isenabled()  # the first ended; the second still runs
    release.set()
    worker.join()
    assert ended == [False] and gc.isenabled()


def _inside_a_block():
    with cycle_collection_paused():
        return gc.isenabled()


@pytest.fixture
def collector_during_submit(monkeypatch):
    """Whether the collector was on, each time the bulk view submitted."""
    from federation.contributions import api

    seen: list[bool] = []
    submit = api.contributions_submit

    def recording(**kwargs):
        seen.append(gc.isenabled())
        return submit(**kwargs)

    monkeypatch.setattr(api, "contributions_submit", recording)
    return seen


@pytest.mark.django_db
def test_a_bulk_submission_runs_without_cycle_collections(acme_submitter, collector_during_submit):
    items = [acme_submitter.signed() for _ in range(2)]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 200 and response.json()["created"] == 2
    assert collector_during_submit == [False]
    assert gc.isenabled()


@pytest.mark.django_db
def test_a_refused_bulk_body_leaves_the_collector_on(acme_submitter, collector_during_submit):
    response = acme_submitter.client.post(BULK, {"items": []}, format="json")
    assert response.status_code == 400
    assert collector_during_submit == []
    assert gc.isenabled()


def test_a_collector_turned_off_by_someone_else_stays_off():
    gc.disable()
    try:
        with cycle_collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.django_db
def test_a_pushed_batch_is_received_with_the_collector_paused(monkeypatch):
    from federation.propagation import api
    from tests.support.federation import RemoteHub, contribution_item

    receive = api.batch_receive
    during = []

    def watched(**kwargs):
        during.append(gc.isenabled())
        return receive(**kwargs)

    monkeypatch.setattr(api, "batch_receive", watched)
    bravo = RemoteHub("bravo.example")
    response = bravo.push([contribution_item(bravo.member("acme"))])
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert during == [False] and gc.isenabled()


@pytest.mark.django_db
def test_a_drain_round_is_built_and_sent_with_the_collector_paused(acme_submitter, monkeypatch):
    from federation.propagation import delivery
    from tests.support.sending import Receiver, make_peer, vetted_entry

    send = delivery._send
    during = []

    def watched(peer, rows, result):
        during.append(gc.isenabled())
        return send(peer, rows, result)

    monkeypatch.setattr(delivery, "_send", watched)
    with Receiver() as receiver:
        peer = make_peer("bravo.hub", url=receiver.url)
        vetted_entry(acme_submitter)
        result = delivery.outbox_drain(peer_id=peer.pk, lane="normal")
    assert result.delivered == 1
    assert during == [False] and gc.isenabled()
