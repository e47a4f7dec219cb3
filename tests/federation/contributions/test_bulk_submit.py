"""Bulk submission: per-item results in input order, one transaction, a fixed number of queries."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.contributions.models import Contribution, Entry
from federation.transparency.models import AuditEvent

pytestmark = pytest.mark.django_db

BULK = "/api/v1/contributions/bulk/"


def test_results_follow_input_order_and_valid_items_are_stored(acme_submitter):
    good = [acme_submitter.signed() for _ in range(3)]
    tampered = acme_submitter.signed()
    tampered["contribution"]["labels"] = ["terrorist-content"]
    items = [good[0], {"nonsense": True}, good[1], tampered, good[2], good[0]]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert [r["status"] for r in body["results"]] == [
        "created",
        "rejected",
        "created",
        "rejected",
        "created",
        "duplicate",
    ]
    assert (body["created"], body["duplicate"], body["rejected"]) == (3, 1, 2)
    assert body["results"][1]["error"]["code"] == "invalid"
    assert body["results"][3]["error"]["code"] == "bad_signature"
    assert body["results"][5]["entry_id"] == body["results"][0]["entry_id"]
    assert body["results"][0]["uuid"] == good[0]["contribution"]["uuid"]
    assert Contribution.objects.count() == 3
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 3
    # The forgery carries a claim and gets its own evidence; the junk item is summarised.
    assert AuditEvent.objects.filter(action="contribution.rejected").count() == 1
    (summary,) = AuditEvent.objects.filter(action="contribution.malformed_items")
    assert summary.data["count"] == 1 and summary.data["reasons"][0]["indexes"] == [[1, 1]]


def test_same_uuid_twice_in_one_bulk_with_other_bytes_conflicts(acme_submitter):
    first = acme_submitter.signed()
    second = acme_submitter.signed(uuid=first["contribution"]["uuid"])
    body = acme_submitter.client.post(BULK, {"items": [first, second]}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert body["results"][1]["error"]["code"] == "uuid_conflict"


def test_resubmitted_bulk_is_all_duplicates(acme_submitter):
    items = [acme_submitter.signed() for _ in range(5)]
    first = acme_submitter.client.post(BULK, {"items": items}, format="json").json()
    again = acme_submitter.client.post(BULK, {"items": items}, format="json").json()
    assert (again["created"], again["duplicate"]) == (0, 5)
    assert [r["entry_id"] for r in again["results"]] == [r["entry_id"] for r in first["results"]]


def test_many_adds_of_one_signal_make_one_entry(acme_submitter, globex_submitter):
    signal = {"type": "md5", "value": "e" * 32}
    items = [acme_submitter.signed(signal=signal) for _ in range(4)]
    body = acme_submitter.client.post(BULK, {"items": items}, format="json").json()
    assert body["created"] == 4
    assert len({r["entry_id"] for r in body["results"]}) == 1
    assert Entry.objects.count() == 1


def test_adds_are_applied_before_retracts_within_one_request(acme_submitter):
    signal = {"type": "md5", "value": "f" * 32}
    retract = acme_submitter.signed(action="retract", labels=[], signal=signal)
    add = acme_submitter.signed(signal=signal)
    # The retract comes first in the request, yet it withdraws the add of the same request.
    body = acme_submitter.client.post(BULK, {"items": [retract, add]}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    stored_add = Contribution.objects.get(uuid=add["contribution"]["uuid"])
    assert stored_add.status == Contribution.Status.WITHDRAWN
    assert Entry.objects.get().state == Entry.State.RETRACTED


def test_add_and_retract_in_one_request_leave_a_trusted_members_entry_retracted(acme_submitter):
    acme_submitter.organisation.trusted = True
    acme_submitter.organisation.save()
    signal = {"type": "md5", "value": "9" * 32}
    items = [
        acme_submitter.signed(signal=signal),
        acme_submitter.signed(action="retract", labels=[], signal=signal),
    ]
    body = acme_submitter.client.post(BULK, {"items": items}, format="json").json()
    assert body["created"] == 2
    assert Entry.objects.get().state == Entry.State.RETRACTED


def test_two_retracts_of_one_signal_in_one_request_apply_once(acme_submitter):
    signal = {"type": "md5", "value": "8" * 32}
    acme_submitter.submit(signal=signal)
    items = [acme_submitter.signed(action="retract", labels=[], signal=signal) for _ in range(2)]
    body = acme_submitter.client.post(BULK, {"items": items}, format="json").json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert body["results"][1]["error"]["code"] == "nothing_to_retract"


def test_more_than_bulk_max_items_is_refused(acme_submitter, settings):
    settings.BULK_MAX_ITEMS = 3
    items = [acme_submitter.signed() for _ in range(4)]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_items"
    assert response.json()["error"]["details"] == {"limit": 3, "received": 4}
    assert not Contribution.objects.exists()


def test_body_over_the_limit_is_refused_with_413_before_parsing(acme_submitter, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    items = [acme_submitter.signed() for _ in range(30)]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Contribution.objects.exists()


def test_body_longer_than_its_content_length_claims_is_never_read_past_the_limit(
    acme_submitter, settings
):
    """Whatever Content-Length says, the parser stops reading one byte past the limit."""
    from io import BytesIO

    from rest_framework.test import APIRequestFactory

    from federation.api.parsers import BoundedJSONParser, PayloadTooLarge

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"items": ["x" * 5_000]}).encode()
    request = APIRequestFactory().post(BULK, data=b"{}", content_type="application/json")
    request.META.pop("CONTENT_LENGTH", None)
    stream = BytesIO(body)
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream, parser_context={"request": request})
    assert stream.tell() == 1_001


# SQLite's bulk inserts are split by its limit on bound parameters: more statements as items grow.
postgresql_statements = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="counts the statements of PostgreSQL's path"
)


@postgresql_statements
def test_bulk_costs_the_same_number_of_queries_for_10_and_200_items(acme_submitter):
    def queries_for(count: int) -> int:
        items = [acme_submitter.signed() for _ in range(count)]
        items += [acme_submitter.signed(labels=["no-such-label"])]  # one rejection each time
        with CaptureQueriesContext(connection) as captured:
            response = acme_submitter.client.post(BULK, {"items": items}, format="json")
        assert response.json()["created"] == count
        return len(captured.captured_queries)

    queries_for(1)  # warm up: the vetting policy row is created on first use
    small, large = queries_for(10), queries_for(200)
    assert small == large
    assert large <= 15


@postgresql_statements
def test_bulk_of_retracts_costs_no_query_per_item(acme_submitter):
    def retract_queries(count: int) -> int:
        signals = [{"type": "md5", "value": f"{i:032x}{count}"[-32:]} for i in range(count)]
        adds = [acme_submitter.signed(signal=s) for s in signals]
        acme_submitter.client.post(BULK, {"items": adds}, format="json")
        retracts = [acme_submitter.signed(action="retract", labels=[], signal=s) for s in signals]
        with CaptureQueriesContext(connection) as captured:
            body = acme_submitter.client.post(BULK, {"items": retracts}, format="json").json()
        assert body["created"] == count
        return len(captured.captured_queries)

    retract_queries(1)
    assert retract_queries(10) == retract_queries(100)


@pytest.mark.parametrize("body", [{"items": []}, {"items": "x"}, {"items": None}, [], {}])
def test_bulk_body_must_be_an_object_with_a_non_empty_item_list(acme_submitter, body):
    response = acme_submitter.client.post(BULK, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_bulk_answer_is_the_bytes_drfs_json_renderer_writes(acme_submitter):
    """The answer is written by orjson (federation/contributions/api.py): byte for byte what
    DRF's JSONRenderer gives for the same results, rejections, messages and nulls included."""
    from rest_framework.renderers import JSONRenderer

    from federation.contributions.api import _json_bytes

    items = [acme_submitter.signed(), {"nonsense": True}, acme_submitter.signed()]
    items[2]["contribution"]["labels"] = ["no-such-label"]
    items[2]["signature"] = acme_submitter.signed(items[2]["contribution"])["signature"]
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "rejected"]
    assert response.content == JSONRenderer().render(body)
    odd = {"message": 'line\u2028paragraph\u2029 \x00\x1f"\\ é 😀', "n": [0, -1, 2**63], "x": None}
    assert _json_bytes(odd) == JSONRenderer().render(odd)
