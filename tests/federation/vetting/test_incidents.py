"""Incidents: consortium admins declare and close them; contributions tagged with an active one
follow its policy (auto-vet, or its own quorum). Also the label taxonomy endpoint."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from federation.contributions.models import Entry
from federation.vetting.models import Decision, Incident
from tests.support.vetting import (
    approve,
    error_code,
    events,
    reviewer_of,
    set_policy,
    state_of,
    submit_entry,
)


def declare(party, **body):
    return party.client.post(
        "/api/v1/incidents/", {"name": "Attack livestream", **body}, format="json"
    )


def test_consortium_admin_declares_an_incident_and_it_is_audited(consortium_admin):
    response = declare(
        consortium_admin, description="Shooting streamed live", auto_vet=False, quorum=1
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["active"] is True
    assert (body["auto_vet"], body["quorum"]) == (False, 1)
    incident = Incident.objects.get(pk=body["id"])
    assert incident.declared_by == consortium_admin.user
    (declared,) = events("incident.declared")
    assert declared.object_id == str(incident.pk)
    assert declared.data["name"] == "Attack livestream"


def test_members_list_incidents_but_cannot_declare_them(
    consortium_admin, acme_submitter, acme_admin
):
    declare(consortium_admin)

    listed = acme_submitter.client.get("/api/v1/incidents/")
    refused = declare(acme_admin)

    assert listed.status_code == 200
    assert [i["name"] for i in listed.json()] == ["Attack livestream"]
    assert refused.status_code == 403
    assert Incident.objects.count() == 1


def test_incident_needs_a_name(consortium_admin):
    response = consortium_admin.client.post("/api/v1/incidents/", {"name": ""}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("auto_vet", [0, 1, "true", "yes", None])
def test_auto_vet_is_a_json_boolean_or_the_incident_is_refused(consortium_admin, auto_vet):
    response = consortium_admin.client.post(
        "/api/v1/incidents/", {"name": "Stream", "auto_vet": auto_vet}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"auto_vet"}
    assert not Incident.objects.exists()


def test_closing_an_incident_ends_it_once(consortium_admin):
    incident_id = declare(consortium_admin).json()["id"]

    closed = consortium_admin.client.post(f"/api/v1/incidents/{incident_id}/close/")
    again = consortium_admin.client.post(f"/api/v1/incidents/{incident_id}/close/")
    unknown = consortium_admin.client.post(f"/api/v1/incidents/{uuid.uuid4()}/close/")

    assert closed.status_code == 200
    assert closed.json()["active"] is False
    assert (again.status_code, error_code(again)) == (409, "incident_closed")
    assert unknown.status_code == 404
    assert len(events("incident.closed")) == 1


def test_contribution_tagged_with_an_auto_vet_incident_is_vetted_at_once(
    consortium_admin, acme_submitter
):
    incident_id = declare(consortium_admin).json()["id"]

    entry = submit_entry(acme_submitter, incident=incident_id)

    assert entry.state == Entry.State.VETTED
    decision = Decision.objects.get(entry=entry)
    assert decision.kind == Decision.Kind.POLICY
    assert decision.policy["rule"] == "incident"
    assert decision.policy["incident"] == incident_id


def test_closed_incident_no_longer_fast_tracks(consortium_admin, acme_submitter):
    incident_id = declare(consortium_admin).json()["id"]
    consortium_admin.client.post(f"/api/v1/incidents/{incident_id}/close/")

    entry = submit_entry(acme_submitter, incident=incident_id)

    assert entry.state == Entry.State.PENDING


def test_incident_quorum_overrides_the_hubs_quorum_while_active(
    consortium_admin, acme_submitter, globex_reviewer
):
    set_policy(quorum=3)
    incident_id = declare(consortium_admin, auto_vet=False, quorum=1).json()["id"]
    entry = submit_entry(acme_submitter, incident=incident_id)
    assert entry.state == Entry.State.PENDING

    response = approve(globex_reviewer, entry)

    assert response.json()["entry_state"] == "vetted"
    decision = Decision.objects.get(entry=entry)
    assert decision.policy["rule"] == "incident_quorum"
    assert decision.policy["effective_quorum"] == 1
    assert decision.policy["quorum"] == 3


def test_closed_incident_quorum_no_longer_applies(
    consortium_admin, acme_submitter, globex_reviewer
):
    set_policy(quorum=2)
    incident_id = declare(consortium_admin, auto_vet=False, quorum=1).json()["id"]
    entry = submit_entry(acme_submitter, incident=incident_id)
    Incident.objects.filter(pk=incident_id).update(ended_at=timezone.now() - timedelta(seconds=1))

    response = approve(globex_reviewer, entry)

    assert response.json()["entry_state"] == "pending"


def test_add_tagged_with_an_incident_completes_a_quorum_already_reached_under_it(
    consortium_admin, acme_submitter, globex_submitter
):
    set_policy(quorum=3)
    incident_id = declare(consortium_admin, auto_vet=False, quorum=1).json()["id"]
    entry = submit_entry(acme_submitter)
    initech = reviewer_of("initech")
    assert approve(initech, entry).json()["entry_state"] == "pending"

    globex_submitter.submit(
        signal={"type": entry.signal_type, "value": entry.value}, incident=incident_id
    )

    assert state_of(entry) == Entry.State.VETTED
    (vetted,) = events("entry.vetted", entry)
    assert vetted.data["policy"]["rule"] == "incident_quorum"
    assert vetted.data["approvals"] == 1
    # Like every automatic decision, it is stored with the policy that made it.
    decision = entry.decisions.get(kind=Decision.Kind.POLICY)
    assert decision.verdict == Decision.Verdict.APPROVE
    assert decision.policy["rule"] == "incident_quorum"


# --- labels ------------------------------------------------------------------------------------


def test_members_read_the_label_taxonomy(acme_submitter):
    response = acme_submitter.client.get("/api/v1/labels/")

    assert response.status_code == 200
    slugs = [label["slug"] for label in response.json()]
    assert "attack-footage" in slugs
    assert slugs == sorted(slugs)
    assert set(response.json()[0]) == {"slug", "name", "description", "active"}


def test_labels_need_credentials(anonymous, auditor):
    assert anonymous.get("/api/v1/labels/").status_code == 401
    assert auditor.client.get("/api/v1/labels/").status_code == 403
