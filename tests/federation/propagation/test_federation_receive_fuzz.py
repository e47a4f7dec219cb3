"""Never a 500 on any input: random bodies at the push endpoint answer a documented 4xx (or 200),
and mutated batches, re-signed so that their items are judged, give each item a documented
result while the untouched items are still applied."""

import copy
import os

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from federation.api.schema import ERROR_CODES
from federation.contributions.rejections import REJECTION_STATUS
from federation.receiving.envelope import BatchRefused
from federation.receiving.items import ITEM_CODES
from federation.receiving.receive import batch_receive
from tests.support.federation import (
    RemoteHub,
    contribution_item,
    entry_item,
    key_item,
)

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(
    max_examples=int(os.environ.get("CONCORDAT_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DOCUMENTED_ITEM_CODES = set(ITEM_CODES) | set(REJECTION_STATUS)
DOCUMENTED_STATUSES = {200, 400, 401, 403, 413, 415, 429}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "contribution", "entry", "key", "vetted", "bravo.example", "A" * 88])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture
def bravo(db):
    return RemoteHub("bravo.example")


@given(body=json_values)
@FUZZ
def test_random_bodies_get_a_documented_answer(bravo, body):
    response = bravo.client.post("/api/v1/federation/batches", body, format="json")
    assert response.status_code in DOCUMENTED_STATUSES
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["code"] in ERROR_CODES


@given(batch=json_values, signature=json_scalars)
@FUZZ
def test_random_envelopes_get_a_documented_answer(bravo, batch, signature):
    response = bravo.client.post(
        "/api/v1/federation/batches", {"batch": batch, "signature": signature}, format="json"
    )
    assert response.status_code in DOCUMENTED_STATUSES
    assert response.status_code == 200 or response.json()["error"]["code"] in ERROR_CODES


def _paths(value, prefix=()):
    """Every location inside a JSON value, as key/index tuples."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


def _mutate(value, location, replacement, delete):
    if not location:
        return replacement
    parent = value
    for step in location[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[location[-1]]
    else:
        parent[location[-1]] = replacement
    return value


@given(data=st.data())
@FUZZ
def test_mutated_items_are_judged_alone(bravo, data):
    member = bravo.member()
    items = [
        contribution_item(member),
        entry_item([bravo], {"type": "pdq", "value": "ab" * 32}, state="disputed"),
        key_item(member),
        contribution_item(member),
    ]
    # The first item's attestation under a root (docs/federation.md, "Attestations under one
    # root"): its index, size, proof and root signature are mutated too.
    items[0]["attestations"] = bravo.under_root(items[0]["attestations"])
    victim = data.draw(st.integers(min_value=0, max_value=2), label="victim")
    mutated = [copy.deepcopy(item) for item in items]  # no shared sub-objects between items
    locations = list(_paths(mutated[victim]))
    location = data.draw(st.sampled_from(locations), label="location")
    replacement = data.draw(json_values, label="replacement")
    delete = data.draw(st.booleans(), label="delete")
    mutated[victim] = _mutate(mutated[victim], location, replacement, delete)
    try:
        body = bravo.batch(mutated)
    except ValueError:  # no RFC 8785 form (an integer beyond 2**53): no hub could sign it
        body = {
            "batch": bravo.batch([])["batch"] | {"items": mutated},
            "signature": "A" * 86 + "==",
        }
    try:
        result = batch_receive(peer=bravo.peer, body=body, via="push")
    except BatchRefused as exc:  # only a refusal of the whole batch's envelope is possible
        assert exc.code in ERROR_CODES
        return
    assert len(result.results) == len(mutated)
    for item_result in result.results:
        assert item_result.status in {"accepted", "duplicate", "rejected"}
        if item_result.status == "rejected":
            assert item_result.code in DOCUMENTED_ITEM_CODES, item_result
    # The last item was never touched: it is always applied.
    assert result.results[3].status in {"accepted", "duplicate"}
