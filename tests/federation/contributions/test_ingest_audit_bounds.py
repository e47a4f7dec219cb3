"""What ingest writes to the audit log when it refuses something, and how much (docs/api.md,
"What is audited"): a refused request is one event with bounded evidence of its body; a request's
malformed items are one summary event; an item carrying a verifiable claim keeps its own event."""

import base64
import hashlib
import json

import pytest

from federation.transparency.models import AuditEvent

pytestmark = pytest.mark.django_db

SINGLE = "/api/v1/contributions/"
BULK = "/api/v1/contributions/bulk/"


def _post_raw(party, url: str, body: bytes, content_type: str = "application/json"):
    return party.client.generic("POST", url, body, content_type=content_type)


def _refusal() -> AuditEvent:
    (event,) = AuditEvent.objects.filter(action="contribution.request_rejected")
    return event


def _assert_body_evidence(event: AuditEvent, body: bytes) -> None:
    assert event.data["size"] == len(body)
    assert event.data["sha256"] == hashlib.sha256(body).hexdigest()
    assert base64.b64decode(event.data["head"]) == body[:256]


def test_malformed_json_is_recorded_as_one_refused_request_with_bounded_evidence(
    acme_submitter,
):
    body = b'{"items": [' + b"x" * 100_000
    response = _post_raw(acme_submitter, BULK, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    event = _refusal()
    assert event.data["code"] == "malformed_json" and event.data["path"] == BULK
    assert event.organisation == "acme" and event.actor_type == "credential"
    _assert_body_evidence(event, body)
    assert len(json.dumps(event.data)) < 1_000  # bounded, whatever the body's size


def test_json_array_body_is_recorded_as_a_refused_request(acme_submitter):
    body = json.dumps([acme_submitter.signed()]).encode()
    response = _post_raw(acme_submitter, SINGLE, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    event = _refusal()
    assert event.data["code"] == "invalid" and event.data["path"] == SINGLE
    _assert_body_evidence(event, body)


def test_too_many_items_is_recorded_as_a_refused_request(acme_submitter, settings):
    settings.BULK_MAX_ITEMS = 3
    body = json.dumps({"items": [acme_submitter.signed() for _ in range(4)]}).encode()
    response = _post_raw(acme_submitter, BULK, body)
    assert response.json()["error"]["code"] == "too_many_items"
    event = _refusal()
    assert event.data["code"] == "too_many_items"
    _assert_body_evidence(event, body)


def test_duplicate_name_is_recorded_as_a_refused_request(acme_submitter):
    body = b'{"items": [], "items": []}'
    assert _post_raw(acme_submitter, BULK, body).json()["error"]["code"] == "malformed_json"
    assert "duplicate" in _refusal().data["message"]


def test_body_over_the_limit_is_recorded_by_its_declared_size(acme_submitter, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"items": [acme_submitter.signed() for _ in range(5)]}).encode()
    assert _post_raw(acme_submitter, BULK, body).status_code == 413
    event = _refusal()
    assert event.data["code"] == "payload_too_large"
    assert event.data["size"] == len(body) and event.data["sha256"] is None  # never read


def test_other_media_type_is_recorded_as_a_refused_request(acme_submitter):
    response = _post_raw(acme_submitter, SINGLE, b"a=b", "application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _refusal().data["code"] == "unsupported_media_type"


def test_unauthenticated_garbage_writes_nothing(anonymous):
    response = anonymous.generic("POST", BULK, b"not json", content_type="application/json")
    assert response.status_code == 401
    assert not AuditEvent.objects.exists()


def test_ten_thousand_junk_items_write_one_summary_event(acme_submitter):
    body = json.dumps({"items": [{}] * 10_000}).encode()
    assert len(body) < 70_000
    before = AuditEvent.objects.count()
    response = _post_raw(acme_submitter, BULK, body)
    assert response.status_code == 200 and response.json()["rejected"] == 10_000
    assert AuditEvent.objects.count() == before + 1
    (summary,) = AuditEvent.objects.filter(action="contribution.malformed_items")
    assert summary.data["count"] == 10_000 and summary.data["items"] == 10_000
    (reason,) = summary.data["reasons"]
    assert (reason["code"], reason["field"], reason["count"]) == ("invalid", "item", 10_000)
    assert reason["indexes"] == [[0, 9_999]]
    _assert_body_evidence_in(summary.data["request"], body)
    assert summary.object_id == hashlib.sha256(body).hexdigest()
    assert len(json.dumps(summary.data)) < 2_000


def _assert_body_evidence_in(evidence: dict, body: bytes) -> None:
    assert evidence["size"] == len(body)
    assert evidence["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_bad_signature_among_junk_still_gets_its_own_evidence_event(acme_submitter):
    forged = acme_submitter.signed()
    forged["contribution"]["labels"] = ["terrorist-content"]
    items = [{}] * 500 + [forged] + [{"contribution": {}, "signature": "x"}] * 500
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.json()["rejected"] == 1_001
    (evidence,) = AuditEvent.objects.filter(action="contribution.rejected")
    assert evidence.data["code"] == "bad_signature" and evidence.data["index"] == 500
    assert evidence.data["canonical"] and evidence.data["signature"] == forged["signature"]
    (summary,) = AuditEvent.objects.filter(action="contribution.malformed_items")
    assert summary.data["count"] == 1_000
    assert [r["indexes"] for r in summary.data["reasons"]] == [[[0, 499]], [[501, 1_000]]]


def test_many_distinct_reasons_are_summarised_within_a_bound(acme_submitter):
    items = []
    for n in range(200):
        document = acme_submitter.contribution()
        document[f"extra_{n}"] = 1  # a different unknown-field message for each item
        items.append(acme_submitter.signed(document))
    response = acme_submitter.client.post(BULK, {"items": items}, format="json")
    assert response.json()["rejected"] == 200
    (summary,) = AuditEvent.objects.filter(action="contribution.malformed_items")
    reasons = summary.data["reasons"]
    assert len(reasons) <= 33
    assert sum(r["count"] for r in reasons) == 200
    assert reasons[-1]["message"] is None  # the rest grouped by code and field
    assert len(summary.data["samples"]) == 20  # their uuids and signatures, bounded
