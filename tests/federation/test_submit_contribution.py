"""Submitting one signed contribution."""

import base64

import pytest

from federation.contributions.models import Contribution, Entry
from federation.transparency.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_valid_contribution_is_stored_with_its_signed_bytes(acme_submitter):
    signed = acme_submitter.signed()
    response = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    contribution = Contribution.objects.get(uuid=signed["contribution"]["uuid"])
    assert base64.b64encode(bytes(contribution.signature)).decode() == signed["signature"]
    assert body["canonical"] == contribution.canonical
    entry = Entry.objects.get(pk=body["entry_id"])
    assert entry.value == signed["contribution"]["signal"]["value"]
    assert entry.state == Entry.State.PENDING
    event = AuditEvent.objects.get(action="contribution.accepted")
    assert event.organisation == "acme"
    assert event.data["uuid"] == signed["contribution"]["uuid"]


def test_tampered_contribution_is_rejected_and_audited(acme_submitter):
    signed = acme_submitter.signed()
    signed["contribution"]["signal"]["value"] = "0" * 64
    response = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    assert not Contribution.objects.exists()
    event = AuditEvent.objects.get(action="contribution.rejected")
    assert event.data["code"] == "bad_signature"
    assert event.data["signature"] == signed["signature"]
