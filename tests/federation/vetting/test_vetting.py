"""Vetting: reviewers of other organisations vote until the policy's quorum is reached; consortium
admins rule; trusted members are vetted automatically; every decision records its policy."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from federation.contributions.models import Entry, Label
from federation.errors import Conflict
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision, VettingPolicy
from federation.vetting.services import entry_vote
from members.actors import Actor
from members.models import Organisation, Role
from tests.support.parties import make_member, make_organisation
from tests.support.vetting import (
    approve,
    error_code,
    events,
    reject,
    reviewer_of,
    set_policy,
    state_of,
    submit_entry,
)


def test_approval_by_another_organisation_vets_the_entry_and_records_the_decision(
    acme_submitter, globex_reviewer
):
    entry = submit_entry(acme_submitter)
    assert entry.state == Entry.State.PENDING

    response = approve(globex_reviewer, entry, "matches the attack video")

    assert response.status_code == 200, response.json()
    assert response.json()["entry_state"] == "vetted"
    assert state_of(entry) == Entry.State.VETTED
    decision = Decision.objects.get(entry=entry)
    assert decision.kind == Decision.Kind.VOTE
    assert decision.verdict == Decision.Verdict.APPROVE
    assert decision.user == globex_reviewer.user
    assert decision.organisation == globex_reviewer.organisation
    assert decision.reason == "matches the attack video"
    assert decision.policy["quorum"] == 1
    assert decision.policy["rule"] == "quorum"
    (voted,) = events("entry.voted", entry)
    assert voted.organisation == "globex"
    assert voted.actor_type == "credential"
    assert voted.data["verdict"] == "approve"
    (vetted,) = events("entry.vetted", entry)
    assert vetted.data["from"] == "pending"
    assert vetted.data["to"] == "vetted"
    assert vetted.data["policy"]["effective_quorum"] == 1


def test_reviewer_cannot_vote_on_own_organisations_entry(acme_submitter, acme_reviewer):
    entry = submit_entry(acme_submitter)

    response = approve(acme_reviewer, entry)

    assert response.status_code == 403
    assert error_code(response) == "self_vote"
    assert not Decision.objects.filter(entry=entry).exists()
    assert state_of(entry) == Entry.State.PENDING


def test_member_admin_cannot_vote_on_an_entry_its_organisation_added(
    acme_submitter, globex_submitter, globex_admin
):
    entry = submit_entry(acme_submitter)
    globex_submitter.submit(signal={"type": entry.signal_type, "value": entry.value})

    response = approve(globex_admin, entry)

    assert response.status_code == 403
    assert error_code(response) == "self_vote"


def test_second_vote_of_the_same_organisation_in_a_round_is_refused(
    acme_submitter, globex_reviewer, globex_admin
):
    set_policy(quorum=2)
    entry = submit_entry(acme_submitter)
    assert approve(globex_reviewer, entry).status_code == 200

    again = approve(globex_reviewer, entry)
    colleague = reject(globex_admin, entry, "not extremist content")

    assert again.status_code == 409
    assert error_code(again) == "already_voted"
    assert colleague.status_code == 409
    assert error_code(colleague) == "already_voted"
    assert Decision.objects.filter(entry=entry).count() == 1
    assert state_of(entry) == Entry.State.PENDING


def test_database_refuses_two_votes_of_one_organisation_in_a_round(acme_submitter, globex):
    entry = submit_entry(acme_submitter)
    vote = {
        "entry": entry,
        "review_round": entry.review_round,
        "kind": Decision.Kind.VOTE,
        "verdict": Decision.Verdict.APPROVE,
        "organisation": globex,
    }
    Decision.objects.create(**vote)
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(**vote)
    # Admin rulings and policy decisions are not votes: the constraint leaves them alone.
    Decision.objects.create(**{**vote, "kind": Decision.Kind.ADMIN, "organisation": None})
    Decision.objects.create(**{**vote, "kind": Decision.Kind.ADMIN, "organisation": None})


def test_quorum_of_two_needs_two_other_organisations(acme_submitter, globex_reviewer):
    set_policy(quorum=2)
    initech = reviewer_of("initech")
    entry = submit_entry(acme_submitter)

    first = approve(globex_reviewer, entry)
    assert first.json()["entry_state"] == "pending"
    second = approve(initech, entry)

    assert second.json()["entry_state"] == "vetted"
    assert len(events("entry.vetted", entry)) == 1
    assert (
        Decision.objects.get(entry=entry, organisation=initech.organisation).policy["quorum"] == 2
    )


# Blank by the schema's pattern (REASON_TEXT) and the service alike: whitespace in either regex
# dialect (U+FEFF is ECMA's, U+0085 Python's) and the information separators U+001C-U+001F.
@pytest.mark.parametrize("blank", ["   ", "\x1c", " \x1f\u0085 ", "\ufeff", "\u3000\t"])
def test_reject_needs_a_reason(acme_submitter, globex_reviewer, blank):
    entry = submit_entry(acme_submitter)

    response = reject(globex_reviewer, entry, blank)

    assert response.status_code == 400
    assert error_code(response) == "reason_required"
    assert state_of(entry) == Entry.State.PENDING


def test_a_reason_with_one_visible_character_is_a_reason(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)

    assert reject(globex_reviewer, entry, "\x1c.\ufeff").status_code == 200
    assert state_of(entry) == Entry.State.REJECTED


def test_rejections_reaching_the_quorum_reject_the_entry(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)

    response = reject(globex_reviewer, entry, "a cat video, not attack footage")

    assert response.status_code == 200
    assert state_of(entry) == Entry.State.REJECTED
    (rejected,) = events("entry.rejected", entry)
    assert rejected.data["rejections"] == 1
    assert Decision.objects.get(entry=entry).reason == "a cat video, not attack footage"


def test_vote_on_an_entry_that_is_not_pending_is_refused(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)
    initech = reviewer_of("initech")

    response = approve(initech, entry)

    assert response.status_code == 409
    assert error_code(response) == "not_pending"


def test_vote_on_unknown_entry_is_not_found(globex_reviewer):
    response = approve(globex_reviewer, Entry(pk=987654))
    assert response.status_code == 404


def test_new_add_after_rejection_opens_a_new_round_in_which_organisations_vote_again(
    acme_submitter, globex_reviewer, globex_submitter
):
    entry = submit_entry(acme_submitter)
    reject(globex_reviewer, entry, "wrong hash")
    initech = make_member("ivan", make_organisation("initech"), Role.SUBMITTER)

    initech.submit(signal={"type": entry.signal_type, "value": entry.value})

    entry.refresh_from_db()
    assert entry.state == Entry.State.PENDING
    assert entry.review_round == 2
    assert approve(globex_reviewer, entry).json()["entry_state"] == "vetted"


def test_review_queue_lists_only_entries_the_reviewers_organisation_may_vote_on(
    acme_submitter, globex_submitter, globex_reviewer, acme_reviewer
):
    set_policy(quorum=2)
    acme_entry = submit_entry(acme_submitter)
    voted_entry = submit_entry(acme_submitter)
    globex_entry = submit_entry(globex_submitter)
    approve(globex_reviewer, voted_entry)

    globex_queue = globex_reviewer.client.get("/api/v1/review/queue/")
    acme_queue = acme_reviewer.client.get("/api/v1/review/queue/")

    assert globex_queue.status_code == 200
    assert [item["id"] for item in globex_queue.json()["results"]] == [acme_entry.pk]
    assert globex_queue.json()["results"][0]["contributors"] == ["acme"]
    assert {item["id"] for item in acme_queue.json()["results"]} == {globex_entry.pk}


def test_consortium_admin_rules_on_a_pending_entry(acme_submitter, consortium_admin):
    entry = submit_entry(acme_submitter)

    response = approve(consortium_admin, entry, "verified against the original footage")

    assert response.status_code == 200, response.json()
    assert state_of(entry) == Entry.State.VETTED
    decision = Decision.objects.get(entry=entry)
    assert decision.kind == Decision.Kind.ADMIN
    assert decision.user == consortium_admin.user
    assert decision.policy["rule"] == "admin_ruling"
    (vetted,) = events("entry.vetted", entry)
    assert vetted.data["reason"] == "verified against the original footage"


def test_consortium_admin_ruling_needs_a_reason(acme_submitter, consortium_admin):
    entry = submit_entry(acme_submitter)
    response = reject(consortium_admin, entry)
    assert response.status_code == 400
    assert error_code(response) == "reason_required"


def test_trusted_member_is_vetted_automatically_with_the_policy_recorded(db):
    trusted = make_member("tess", make_organisation("trustco", trusted=True), Role.SUBMITTER)

    entry = submit_entry(trusted)

    assert entry.state == Entry.State.VETTED
    decision = Decision.objects.get(entry=entry)
    assert decision.kind == Decision.Kind.POLICY
    assert decision.policy["rule"] == "trusted_member"
    assert decision.policy["member"] == "trustco"


def test_trusted_member_waits_for_review_when_the_policy_says_so(db):
    set_policy(auto_vet_trusted=False)
    trusted = make_member("tess", make_organisation("trustco", trusted=True), Role.SUBMITTER)
    assert submit_entry(trusted).state == Entry.State.PENDING


# --- the policy --------------------------------------------------------------------------------


def test_anyone_with_read_sees_the_policy(acme_submitter):
    response = acme_submitter.client.get("/api/v1/policy/")
    assert response.status_code == 200
    assert response.json()["quorum"] == 1
    assert response.json()["dispute_threshold"] == 2


def test_consortium_admin_changes_the_policy_and_it_is_audited(consortium_admin):
    response = consortium_admin.client.patch(
        "/api/v1/policy/", {"quorum": 3, "dispute_threshold": 4}, format="json"
    )

    assert response.status_code == 200, response.json()
    policy = VettingPolicy.current()
    assert (policy.quorum, policy.dispute_threshold) == (3, 4)
    (changed,) = events("policy.changed")
    assert changed.data["from"]["quorum"] == 1
    assert changed.data["to"]["quorum"] == 3
    assert changed.actor_label.startswith("connie")


@pytest.mark.parametrize(
    "body",
    [
        {"quorum": 0},
        {"dispute_threshold": -1},
        {"quorum": "many"},
        # a JSON boolean only, as the schema says (DRF would take 0, "no", "off")
        {"auto_vet_trusted": 0},
        {"auto_vet_trusted": "false"},
        {"auto_vet_trusted": "off"},
        {"auto_vet_trusted": None},
    ],
)
def test_policy_refuses_nonsense(consortium_admin, body):
    response = consortium_admin.client.patch("/api/v1/policy/", body, format="json")
    assert response.status_code == 400
    assert VettingPolicy.current().quorum == 1
    assert not events("policy.changed")


def test_reviewer_cannot_change_the_policy(globex_reviewer):
    response = globex_reviewer.client.patch("/api/v1/policy/", {"quorum": 5}, format="json")
    assert response.status_code == 403
    assert VettingPolicy.current().quorum == 1


# --- concurrency -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_reach_the_quorum_exactly_once(acme_submitter):
    """Six reviewers of six organisations approve at the same instant, each on its own database
    connection. The quorum is three: three votes are stored, one vets the entry, and the others
    find it vetted already."""
    # Transactional tests flush the tables, seeded labels included; put back the one we use.
    Label.objects.get_or_create(
        slug="attack-footage", defaults={"name": "Attack footage", "description": "test"}
    )
    set_policy(quorum=3)
    entry = submit_entry(acme_submitter)
    voters = []
    for n in range(6):
        organisation = Organisation.objects.create(slug=f"org{n}", name=f"Org {n}")
        voters.append(make_member(f"rev{n}", organisation, Role.REVIEWER, with_key=False))
    barrier = threading.Barrier(len(voters))
    outcomes: list[str] = []
    lock = threading.Lock()

    def vote(party):
        try:
            barrier.wait(timeout=10)
            entry_vote(
                entry_id=entry.pk,
                verdict="approve",
                reason="",
                actor=Actor.for_principal(party.principal),
            )
            result = "stored"
        except Conflict as exc:
            result = exc.code
        finally:
            connection.close()  # this thread's own connection
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=vote, args=(party,)) for party in voters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["not_pending"] * 3 + ["stored"] * 3
    assert state_of(entry) == Entry.State.VETTED
    assert Decision.objects.filter(entry=entry, kind=Decision.Kind.VOTE).count() == 3
    assert (
        AuditEvent.objects.filter(
            action="entry.vetted", object_type="entry", object_id=str(entry.pk)
        ).count()
        == 1
    )
