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


def test_resubmitting_the_same_bytes_answers_200_with_the_same_contribution(acme_submitter):
    signed = acme_submitter.signed()
    first = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    again = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Contribution.objects.count() == 1


def test_value_is_stored_lowercase_and_one_entry_serves_every_member(
    acme_submitter, globex_submitter
):
    value = "AB" * 32
    a = acme_submitter.submit(signal={"type": "sha256", "value": value})
    g = globex_submitter.submit(signal={"type": "sha256", "value": value.lower()})
    assert (a.status_code, g.status_code) == (201, 201)
    assert a.json()["entry_id"] == g.json()["entry_id"]
    entry = Entry.objects.get()
    assert (entry.signal_type, entry.value) == ("sha256", "ab" * 32)


def test_retract_withdraws_own_add_and_retracts_the_entry(acme_submitter):
    added = acme_submitter.submit(signal={"type": "md5", "value": "c" * 32})
    retracted = acme_submitter.submit(
        action="retract", labels=[], signal={"type": "md5", "value": "c" * 32}
    )
    assert retracted.status_code == 201, retracted.json()
    add = Contribution.objects.get(uuid=added.json()["uuid"])
    assert add.status == Contribution.Status.WITHDRAWN
    assert str(add.withdrawn_by.uuid) == retracted.json()["uuid"]
    assert Entry.objects.get().state == Entry.State.RETRACTED


def test_retracting_another_members_add_is_refused(acme_submitter, globex_submitter):
    acme_submitter.submit(signal={"type": "md5", "value": "d" * 32})
    response = globex_submitter.submit(
        action="retract", labels=[], signal={"type": "md5", "value": "d" * 32}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_retract"
    assert Entry.objects.get().state == Entry.State.PENDING


def test_submitter_cannot_read_another_members_contribution(acme_submitter, globex_submitter):
    uuid = acme_submitter.submit().json()["uuid"]
    assert acme_submitter.client.get(f"/api/v1/contributions/{uuid}/").status_code == 200
    response = globex_submitter.client.get(f"/api/v1/contributions/{uuid}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_reviewer_without_submit_capability_gets_403(acme_reviewer, acme_submitter):
    signed = acme_submitter.signed()
    response = acme_reviewer.client.post("/api/v1/contributions/", signed, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
