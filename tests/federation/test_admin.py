"""The Django admin of vetting, feedback, incidents, labels, policy and the audit log: each action
calls the same service as the API and so writes the same audit events, with the admin as actor."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from federation.contributions.models import Contribution, Entry, Label
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision, Incident, VettingPolicy
from tests.support.tampering import as_superuser_bypassing_triggers
from tests.support.vetting import (
    approve,
    events,
    feedback,
    set_policy,
    state_of,
    submit_entry,
)

CHANGELIST = "/admin/federation/entry/"


@pytest.fixture
def admin_client_for(db):
    def client_for(party) -> Client:
        client = Client()
        client.force_login(party.user)
        return client

    return client_for


@pytest.fixture
def connie(consortium_admin, admin_client_for) -> Client:
    return admin_client_for(consortium_admin)


def action(client: Client, url: str, name: str, objects, **extra):
    data = {"action": name, "_selected_action": [str(o.pk) for o in objects], **extra}
    return client.post(url, data)


def test_consortium_admin_sees_the_queue_and_members_cannot_sign_in(
    connie, acme_submitter, admin_client_for
):
    entry = submit_entry(acme_submitter)

    queue = connie.get(CHANGELIST, {"state__exact": "pending"})
    member = admin_client_for(acme_submitter).get(CHANGELIST)

    assert queue.status_code == 200
    assert entry.value[:16] in queue.content.decode()
    assert member.status_code == 302  # to the login page: members are not staff
    assert "/admin/login/" in member["Location"]


def test_auditor_reads_only_the_audit_log(auditor, admin_client_for):
    client = admin_client_for(auditor)
    assert client.get("/admin/federation/auditevent/").status_code == 200
    assert client.get(CHANGELIST).status_code == 403
    assert client.get("/admin/federation/vettingpolicy/").status_code == 403


@pytest.mark.parametrize(
    "filters", [{"label": "attack-footage"}, {"member": "acme"}, {"signal_type__exact": "pdq"}]
)
def test_queue_filters_narrow_the_list(connie, acme_submitter, globex_submitter, filters):
    kept = submit_entry(acme_submitter, labels=["attack-footage"])
    dropped = submit_entry(
        globex_submitter, labels=["manifesto"], signal={"type": "md5", "value": "a" * 32}
    )

    page = connie.get(CHANGELIST, filters).content.decode()

    assert f'value="{kept.pk}"' in page
    assert f'value="{dropped.pk}"' not in page


def test_queue_filters_by_incident(connie, acme_submitter, consortium_admin):
    incident_id = consortium_admin.client.post(
        "/api/v1/incidents/", {"name": "Stream", "auto_vet": False}, format="json"
    ).json()["id"]
    tagged = submit_entry(acme_submitter, incident=incident_id)
    untagged = submit_entry(acme_submitter)

    page = connie.get(CHANGELIST, {"incident": incident_id}).content.decode()

    assert f'value="{tagged.pk}"' in page
    assert f'value="{untagged.pk}"' not in page


def test_bulk_reject_asks_for_a_reason_then_rules_and_audits(
    connie, acme_submitter, consortium_admin
):
    entries = [submit_entry(acme_submitter), submit_entry(acme_submitter)]

    asked = action(connie, CHANGELIST, "reject_entries", entries)
    assert asked.status_code == 200
    assert "Reject entries" in asked.content.decode()
    assert all(state_of(e) == Entry.State.PENDING for e in entries)

    blank = action(connie, CHANGELIST, "reject_entries", entries, apply="1", reason=" ")
    assert blank.status_code == 200  # the form again, with its error
    assert all(state_of(e) == Entry.State.PENDING for e in entries)

    done = action(connie, CHANGELIST, "reject_entries", entries, apply="1", reason="not TVEC")
    assert done.status_code == 302
    for entry in entries:
        assert state_of(entry) == Entry.State.REJECTED
        decision = Decision.objects.get(entry=entry)
        assert (decision.kind, decision.reason) == (Decision.Kind.ADMIN, "not TVEC")
        (event,) = events("entry.rejected", entry)
        assert event.actor_type == "user"
        assert event.actor_id == str(consortium_admin.user.pk)
        assert event.actor_label == "connie"


def test_bulk_approve_reports_entries_that_are_not_pending(connie, acme_submitter, globex_reviewer):
    pending = submit_entry(acme_submitter)
    vetted = submit_entry(acme_submitter)
    approve(globex_reviewer, vetted)

    response = action(
        connie, CHANGELIST, "approve_entries", [pending, vetted], apply="1", reason="checked"
    )

    assert state_of(pending) == Entry.State.VETTED
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Only pending entries" in m for m in messages)
    assert any("done for 1 of 2" in m for m in messages)


def test_dispute_is_resolved_from_the_entry_list(connie, acme_submitter, globex_reviewer):
    set_policy(dispute_threshold=1)
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)
    feedback(globex_reviewer, entry, "false_positive")
    assert state_of(entry) == Entry.State.DISPUTED

    action(connie, CHANGELIST, "confirm_disputes", [entry], apply="1", reason="re-checked")

    assert state_of(entry) == Entry.State.VETTED
    (resolved,) = events("entry.dispute_resolved", entry)
    assert (resolved.actor_type, resolved.data["outcome"]) == ("user", "confirm")


def test_dispute_is_resolved_from_the_feedback_list(connie, acme_submitter, globex_reviewer):
    set_policy(dispute_threshold=1)
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)
    feedback(globex_reviewer, entry, "disagree")
    opinion = entry.feedback.get()

    action(
        connie, "/admin/federation/feedback/", "reject_disputes", [opinion], apply="1", reason="ok"
    )

    assert state_of(entry) == Entry.State.REJECTED


def test_entry_page_shows_signature_status_and_history(connie, acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    forged = submit_entry(acme_submitter)
    approve(globex_reviewer, entry, "seen it")
    contribution = Contribution.objects.get(entry=forged)
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=contribution.pk).update(
            canonical=contribution.canonical.replace('"attack-footage"', '"manifesto"')
        )

    good = connie.get(f"{CHANGELIST}{entry.pk}/change/").content.decode()
    bad = connie.get(f"{CHANGELIST}{forged.pk}/change/").content.decode()

    assert "✔ valid (key" in good
    assert "seen it" in good  # the decision, inline
    assert "✘ does not verify" in bad
    assert 'name="_save"' not in good  # read-only


def test_decisions_are_listed_newest_first_with_who_decided_and_why(
    connie, acme_submitter, globex_reviewer
):
    older, newer = submit_entry(acme_submitter), submit_entry(acme_submitter)
    approve(globex_reviewer, older, "first look")
    approve(globex_reviewer, newer, "second look")

    page = connie.get("/admin/federation/decision/").content.decode()

    assert page.index("second look") < page.index("first look")
    assert globex_reviewer.organisation.slug in page
    assert globex_reviewer.user.username in page


def test_the_admin_index_names_witnesses_in_plain_english(connie):
    page = connie.get("/admin/").content.decode()
    assert "Witnesses" in page and "Witnesss" not in page


def test_policy_is_edited_in_the_admin_and_audited(connie):
    policy = VettingPolicy.current()
    url = f"/admin/federation/vettingpolicy/{policy.pk}/change/"

    assert connie.get("/admin/federation/vettingpolicy/")["Location"] == url
    response = connie.post(url, {"quorum": "2", "auto_vet_trusted": "on", "dispute_threshold": "3"})

    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.quorum, policy.dispute_threshold) == (2, 3)
    (changed,) = events("policy.changed")
    assert changed.actor_type == "user"
    assert changed.data["to"]["quorum"] == 2


def test_policy_refuses_a_zero_quorum_in_the_admin(connie):
    url = f"/admin/federation/vettingpolicy/{VettingPolicy.current().pk}/change/"
    response = connie.post(url, {"quorum": "0", "dispute_threshold": "2"})
    assert response.status_code == 200  # the form with its error
    assert VettingPolicy.current().quorum == 1
    assert not events("policy.changed")


def test_incidents_are_declared_and_closed_in_the_admin(connie):
    response = connie.post(
        "/admin/federation/incident/add/",
        {
            "name": "Mall attack",
            "description": "",
            "started_at_0": "",
            "started_at_1": "",
            "quorum": "2",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    incident = Incident.objects.get(name="Mall attack")
    assert incident.auto_vet is False  # an unticked box
    assert incident.quorum == 2
    assert events("incident.declared")[0].actor_type == "user"

    action(connie, "/admin/federation/incident/", "close_incidents", [incident])

    incident.refresh_from_db()
    assert incident.ended_at is not None
    assert events("incident.closed")[0].object_id == str(incident.pk)


def test_labels_are_edited_in_the_admin_and_audited(connie):
    response = connie.post(
        "/admin/federation/label/add/",
        {
            "slug": "hostage-video",
            "name": "Hostage video",
            "description": "Captives filmed.",
            "active": "on",
        },
    )
    assert response.status_code == 302
    label = Label.objects.get(slug="hostage-video")
    connie.post(
        f"/admin/federation/label/{label.pk}/change/",
        {"name": "Hostage video", "description": "Captives filmed."},  # deactivate
    )

    label.refresh_from_db()
    assert label.active is False
    assert [e.action for e in AuditEvent.objects.filter(object_type="label").order_by("id")] == [
        "label.created",
        "label.changed",
    ]


def test_audit_log_is_read_only_even_for_superusers(db, acme_submitter):
    superuser = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client = Client()
    client.force_login(superuser)
    event = AuditEvent.objects.first()

    assert client.get("/admin/federation/auditevent/").status_code == 200
    assert client.get("/admin/federation/auditevent/add/").status_code == 403
    assert client.get(f"/admin/federation/auditevent/{event.pk}/delete/").status_code == 403
    change = client.post(f"/admin/federation/auditevent/{event.pk}/change/", {"action": "forged"})
    assert change.status_code == 403
    event.refresh_from_db()
    assert event.action != "forged"
    page = client.get(f"/admin/federation/auditevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page
