"""A bulk submission runs with Python's cycle collector paused (federation/api/cycles.py), and
the collector is on again once it has answered, whatever the answer."""

import gc

import pytest

from federation.api.cycles import cycle_collection_paused
from federation.contributions import api

pytestmark = pytest.mark.django_db

BULK = "/api/v1/contributions/bulk/"


@pytest.fixture
def collector_during_submit(monkeypatch):
    """Whether the collector was on, each time the bulk view submitted."""
    seen: list[bool] = []
    submit = api.contributions_submit

    def recording(**kwargs):
        seen.append(gc.isenabled())
        return submit(**kwargs)

    monkeypatch.setattr(api, "contributions_submit", recording)
    return seen


def test_a_bulk_submission_runs_without_cycle_collections(acme_submitter, collector_during_submit):
    items = [acme_submitter.signed() for _ in range(2)]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 200 and response.json()["created"] == 2
    assert collector_during_submit == [False]
    assert gc.isenabled()


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
