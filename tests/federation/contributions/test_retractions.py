"""Retractions: the origin member's signed retract withdraws its own add; an entry with no active
add left is retracted, leaves the active set and stays in history."""

from django.db.models import Q

from federation.contributions.models import Contribution, Entry
from federation.transparency.models import AuditEvent
from tests.support.vetting import (
    approve,
    error_code,
    events,
    feedback,
    state_of,
    submit_entry,
)


def retract(party, entry):
    return party.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )


def test_origin_member_retracts_its_contribution_and_the_entry_is_retracted(
    acme_submitter, globex_reviewer
):
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)

    response = retract(acme_submitter, entry)

    assert response.status_code == 201, response.json()
    assert state_of(entry) == Entry.State.RETRACTED
    add = Contribution.objects.get(entry=entry, action="add")
    assert add.status == Contribution.Status.WITHDRAWN
    assert add.withdrawn_by.uuid == Contribution.objects.get(entry=entry, action="retract").uuid
    (retracted,) = events("entry.retracted", entry)
    assert retracted.data == {"from": "vetted", "to": "retracted"}


def test_retracted_entry_leaves_the_active_set_but_stays_in_history(
    acme_submitter, globex_reviewer
):
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)
    retract(acme_submitter, entry)

    vetted = acme_submitter.client.get("/api/v1/entries/?state=vetted").json()["results"]
    detail = acme_submitter.client.get(f"/api/v1/entries/{entry.pk}/").json()

    assert entry.pk not in [item["id"] for item in vetted]
    assert detail["state"] == "retracted"
    assert [c["action"] for c in detail["contributions"]] == ["add", "retract"]
    assert acme_submitter.client.get(f"/api/v1/entries/{entry.pk}/decisions/").json()["results"]


def test_retract_by_a_member_that_did_not_add_the_signal_is_refused(
    acme_submitter, globex_submitter
):
    entry = submit_entry(acme_submitter)

    response = retract(globex_submitter, entry)

    assert response.status_code == 409
    assert error_code(response) == "nothing_to_retract"
    assert state_of(entry) == Entry.State.PENDING
    assert Contribution.objects.get(entry=entry).status == Contribution.Status.ACTIVE
    assert not events("entry.retracted", entry)
    assert events("contribution.rejected")[-1].data["code"] == "nothing_to_retract"


def test_entry_stays_while_another_member_still_adds_it(acme_submitter, globex_submitter):
    entry = submit_entry(acme_submitter)
    globex_submitter.submit(signal={"type": entry.signal_type, "value": entry.value})

    retract(acme_submitter, entry)
    assert state_of(entry) == Entry.State.PENDING

    retract(globex_submitter, entry)
    assert state_of(entry) == Entry.State.RETRACTED


def test_retracting_twice_is_refused(acme_submitter):
    entry = submit_entry(acme_submitter)
    retract(acme_submitter, entry)

    response = retract(acme_submitter, entry)

    assert response.status_code == 409
    assert error_code(response) == "nothing_to_retract"


def test_retracted_entry_takes_no_votes_or_feedback(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    retract(acme_submitter, entry)

    vote = approve(globex_reviewer, entry)
    opinion = feedback(globex_reviewer, entry, "disagree")

    assert (vote.status_code, error_code(vote)) == (409, "not_pending")
    assert (opinion.status_code, error_code(opinion)) == (409, "not_vetted")


def test_new_add_after_retraction_reopens_the_entry(acme_submitter, globex_submitter):
    entry = submit_entry(acme_submitter)
    retract(acme_submitter, entry)

    globex_submitter.submit(signal={"type": entry.signal_type, "value": entry.value})

    entry.refresh_from_db()
    assert (entry.state, entry.review_round) == (Entry.State.PENDING, 2)
    assert events("entry.reopened", entry)[0].data["from"] == "retracted"


def test_the_log_records_each_acceptance_before_the_state_change_it_causes(acme, acme_submitter):
    """An auditor reads an entry's events in leaf order: the add's acceptance, then the trusted
    member's auto-vetting it caused; the retract's acceptance, then the retraction it caused."""
    acme.trusted = True
    acme.save()
    entry = submit_entry(acme_submitter)
    retract(acme_submitter, entry)

    contributions = {str(c.uuid): c.action for c in Contribution.objects.filter(entry=entry)}
    logged = [
        contributions.get(e.object_id, e.action)
        for e in AuditEvent.objects.filter(
            Q(object_type="entry", object_id=str(entry.pk))
            | Q(object_type="contribution", object_id__in=list(contributions))
        ).order_by("id")
    ]
    assert logged == ["add", "entry.vetted", "retract", "entry.retracted"]
