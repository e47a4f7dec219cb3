"""Feedback from other members on vetted entries, disputes past the policy's threshold, and their
resolution by a consortium admin."""

import pytest

from federation.contributions.models import Entry
from federation.vetting.models import Decision, Feedback
from tests.support.vetting import (
    approve,
    error_code,
    events,
    feedback,
    reviewer_of,
    set_policy,
    state_of,
    submit_entry,
)


@pytest.fixture
def vetted_entry(acme_submitter, globex_reviewer) -> Entry:
    entry = submit_entry(acme_submitter)
    assert approve(globex_reviewer, entry).json()["entry_state"] == "vetted"
    return entry


def resolve(party, entry, outcome, reason="checked the original"):
    return party.client.post(
        f"/api/v1/entries/{entry.pk}/resolve/",
        {"outcome": outcome, "reason": reason},
        format="json",
    )


def test_feedback_on_a_vetted_entry_is_recorded_and_audited(vetted_entry, globex_reviewer):
    response = feedback(globex_reviewer, vetted_entry, "agree", "seen on our platform too")

    assert response.status_code == 200, response.json()
    assert response.json()["organisation"] == "globex"
    stored = Feedback.objects.get(entry=vetted_entry)
    assert (stored.opinion, stored.note) == ("agree", "seen on our platform too")
    assert stored.user == globex_reviewer.user
    (given,) = events("feedback.given", vetted_entry)
    assert given.data == {"opinion": "agree", "previous": None, "note": "seen on our platform too"}


def test_feedback_on_an_entry_that_is_not_vetted_is_refused(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)

    response = feedback(globex_reviewer, entry, "disagree")

    assert response.status_code == 409
    assert error_code(response) == "not_vetted"
    assert not Feedback.objects.exists()


def test_organisation_cannot_give_feedback_on_its_own_entry(vetted_entry, acme_reviewer):
    response = feedback(acme_reviewer, vetted_entry, "agree")

    assert response.status_code == 403
    assert error_code(response) == "own_entry"
    assert not Feedback.objects.exists()


def test_each_organisation_has_one_current_opinion_which_it_can_change(
    vetted_entry, globex_reviewer, globex_admin
):
    feedback(globex_reviewer, vetted_entry, "agree")
    response = feedback(globex_admin, vetted_entry, "false_positive", "a stock photo")

    assert response.status_code == 200
    (stored,) = Feedback.objects.filter(entry=vetted_entry)
    assert (stored.opinion, stored.note, stored.user) == (
        "false_positive",
        "a stock photo",
        globex_admin.user,
    )
    changed = events("feedback.given", vetted_entry)[-1]
    assert changed.data["previous"] == "agree"


def test_unknown_opinion_is_refused(vetted_entry, globex_reviewer):
    response = feedback(globex_reviewer, vetted_entry, "meh")
    assert response.status_code == 400


def test_entry_becomes_disputed_when_enough_organisations_dissent(
    vetted_entry, globex_reviewer, acme_submitter
):
    initech = reviewer_of("initech")
    umbrella = reviewer_of("umbrella")
    feedback(umbrella, vetted_entry, "agree")
    feedback(globex_reviewer, vetted_entry, "disagree")
    assert state_of(vetted_entry) == Entry.State.VETTED

    feedback(initech, vetted_entry, "false_positive", "a news report")

    assert state_of(vetted_entry) == Entry.State.DISPUTED
    (disputed,) = events("entry.disputed", vetted_entry)
    assert disputed.data["dissenting_organisations"] == 2
    assert disputed.data["policy"]["dispute_threshold"] == 2
    # A dispute is visible to every member, the contributor included, with the feedback behind it.
    seen = acme_submitter.client.get(f"/api/v1/entries/{vetted_entry.pk}/")
    assert seen.json()["state"] == "disputed"
    listed = acme_submitter.client.get(f"/api/v1/entries/{vetted_entry.pk}/feedback/")
    assert {(f["organisation"], f["opinion"]) for f in listed.json()["results"]} == {
        ("umbrella", "agree"),
        ("globex", "disagree"),
        ("initech", "false_positive"),
    }


def test_dispute_threshold_follows_the_policy(vetted_entry, globex_reviewer):
    set_policy(dispute_threshold=1)
    feedback(globex_reviewer, vetted_entry, "disagree")
    assert state_of(vetted_entry) == Entry.State.DISPUTED


def test_consortium_admin_confirms_a_disputed_entry(
    vetted_entry, globex_reviewer, consortium_admin
):
    set_policy(dispute_threshold=1)
    feedback(globex_reviewer, vetted_entry, "disagree")

    response = resolve(consortium_admin, vetted_entry, "confirm")

    assert response.status_code == 200, response.json()
    vetted_entry.refresh_from_db()
    assert vetted_entry.state == Entry.State.VETTED
    assert vetted_entry.dispute_resolved_at is not None
    ruling = Decision.objects.get(entry=vetted_entry, kind=Decision.Kind.ADMIN)
    assert (ruling.verdict, ruling.user) == ("approve", consortium_admin.user)
    assert ruling.policy["rule"] == "dispute_resolution"
    (resolved,) = events("entry.dispute_resolved", vetted_entry)
    assert resolved.data["to"] == "vetted"


def test_feedback_from_before_a_resolution_no_longer_counts(
    vetted_entry, globex_reviewer, consortium_admin
):
    initech = reviewer_of("initech")
    feedback(globex_reviewer, vetted_entry, "disagree")
    feedback(initech, vetted_entry, "disagree")
    resolve(consortium_admin, vetted_entry, "confirm")

    umbrella = reviewer_of("umbrella")
    feedback(umbrella, vetted_entry, "false_positive")
    assert state_of(vetted_entry) == Entry.State.VETTED  # one fresh dissent, threshold two

    feedback(globex_reviewer, vetted_entry, "disagree", "still wrong")  # renewed after resolution
    assert state_of(vetted_entry) == Entry.State.DISPUTED


def test_consortium_admin_rejects_a_disputed_entry(vetted_entry, globex_reviewer, consortium_admin):
    set_policy(dispute_threshold=1)
    feedback(globex_reviewer, vetted_entry, "false_positive")

    response = resolve(consortium_admin, vetted_entry, "reject", "a false positive indeed")

    assert response.status_code == 200
    assert state_of(vetted_entry) == Entry.State.REJECTED
    assert events("entry.dispute_resolved", vetted_entry)[0].data["outcome"] == "reject"


def test_resolving_an_entry_that_is_not_disputed_is_refused(vetted_entry, consortium_admin):
    response = resolve(consortium_admin, vetted_entry, "confirm")
    assert response.status_code == 409
    assert error_code(response) == "not_disputed"


def test_resolution_needs_a_reason_and_a_known_outcome(
    vetted_entry, globex_reviewer, consortium_admin
):
    set_policy(dispute_threshold=1)
    feedback(globex_reviewer, vetted_entry, "disagree")
    assert resolve(consortium_admin, vetted_entry, "confirm", "").status_code == 400
    assert resolve(consortium_admin, vetted_entry, "maybe").status_code == 400
    assert state_of(vetted_entry) == Entry.State.DISPUTED


def test_reviewers_cannot_resolve_disputes(vetted_entry, globex_reviewer):
    set_policy(dispute_threshold=1)
    feedback(globex_reviewer, vetted_entry, "disagree")
    response = resolve(globex_reviewer, vetted_entry, "confirm")
    assert response.status_code == 403
    assert state_of(vetted_entry) == Entry.State.DISPUTED


def test_decisions_and_feedback_of_an_unknown_entry_are_404(acme_submitter):
    for path in ("/api/v1/entries/999999/decisions/", "/api/v1/entries/999999/feedback/"):
        response = acme_submitter.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
