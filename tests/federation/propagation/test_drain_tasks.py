"""The drain tasks (federation/propagation/tasks.py): a task sends the next round at once while
rows are due, for up to ``FEDERATION_DRAIN_TASK_SECONDS``, then hands the lane to a fresh task."""

import pytest

from federation.propagation import tasks
from federation.vetting.models import Incident
from tests.support.sending import make_peer, rows, vetted_entry


@pytest.fixture
def bravo(db, receiver):
    return make_peer("bravo.hub", url=receiver.url)


@pytest.fixture
def handed_over(monkeypatch):
    asked = []
    monkeypatch.setattr(tasks, "request_drain", lambda **kw: asked.append(kw))
    return asked


@pytest.fixture
def small_rounds(settings):
    settings.FEDERATION_BATCH_SIZE = 3
    settings.FEDERATION_DRAIN_PARALLEL = 1
    settings.FEDERATION_DRAIN_ROUNDS = 1


def test_a_task_sends_round_after_round_while_rows_are_due(
    acme_submitter, bravo, receiver, small_rounds, handed_over
):
    for _ in range(7):
        vetted_entry(acme_submitter)

    assert tasks.drain_outbox(bravo.pk) == 7

    assert [len(b["batch"]["items"]) for b in receiver.batches] == [3, 3, 1]
    assert {r.state for r in rows()} == {"delivered"}
    assert handed_over == []  # nothing left: no fresh task


def test_a_task_that_has_had_its_time_hands_the_lane_to_a_fresh_one(
    acme_submitter, bravo, receiver, small_rounds, handed_over, settings
):
    settings.FEDERATION_DRAIN_TASK_SECONDS = 0
    for _ in range(7):
        vetted_entry(acme_submitter)

    assert tasks.drain_outbox(bravo.pk) == 3

    assert [len(b["batch"]["items"]) for b in receiver.batches] == [3]
    assert handed_over == [{"peer_id": bravo.pk, "lane": "normal"}]


def test_the_incident_lane_task_goes_on_the_same_way(
    acme_submitter, bravo, receiver, small_rounds, handed_over
):
    incident = Incident.objects.create(name="Event", description="d")
    for _ in range(4):
        vetted_entry(acme_submitter, incident=str(incident.pk))

    assert tasks.drain_outbox_incident(bravo.pk) == 4
    assert tasks.drain_outbox(bravo.pk) == 0  # the normal lane had nothing
    assert [len(b["batch"]["items"]) for b in receiver.batches] == [3, 1]
    assert handed_over == []
