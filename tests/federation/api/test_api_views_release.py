"""An API view lets go of its request and response once it has answered (federation/api/views.py):
without that, DRF's request and view cycles keep a request's body and a response's content alive
until a full collection of the cyclic garbage collector, hundreds of requests later in a busy
worker."""

import gc

import pytest
from rest_framework.request import Request
from rest_framework.views import APIView

from federation.api import views


@pytest.fixture
def no_cyclic_collection():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


# By type(), not isinstance(): the heap may hold dead weak proxies, which raise on isinstance().
def _live_requests() -> int:
    return sum(issubclass(type(o), Request) for o in gc.get_objects())


def _views_holding_a_response() -> int:
    return sum(getattr(o, "response", None) is not None for o in gc.get_objects()
               if issubclass(type(o), APIView))  # fmt: skip


def test_a_request_and_its_response_are_freed_without_the_cyclic_collector(
    globex_reviewer, no_cyclic_collection
):
    before = _live_requests()
    for _ in range(3):
        response = globex_reviewer.client.get("/api/v1/sync/changes")
        assert response.status_code == 200
        del response
    assert _live_requests() == before
    assert _views_holding_a_response() == 0


def test_without_the_release_each_view_would_outlive_its_request(
    globex_reviewer, no_cyclic_collection, monkeypatch
):
    # The control: the same requests through DRF's own dispatch leave every one behind.
    monkeypatch.setattr(APIView, "dispatch", APIView.dispatch.__wrapped__)
    before = _live_requests()
    for _ in range(3):
        response = globex_reviewer.client.get("/api/v1/sync/changes")
        assert response.status_code == 200
        del response
    assert _live_requests() == before + 3
    assert _views_holding_a_response() == 3


def test_install_wraps_once():
    wrapped = APIView.dispatch
    views.install()
    assert APIView.dispatch is wrapped
