"""The admin as a daily tool for consortium admins: the review queue, the entry page, the audit
log's links, and the vote tally that agrees with the quorum rule."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from federation.contributions.models import Entry
from federation.transparency.models import AuditEvent, Checkpoint
from federation.transparency.sequencer import sequence_pending
from federation.vetting.models import Decision
from federation.vetting.policy import vote_tally
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
def connie(consortium_admin) -> Client:
    client = Client()
    client.force_login(consortium_admin.user)
    return client


def test_the_admins_tally_leaves_out_a_vote_the_quorum_leaves_out(
    connie, acme_submitter, globex_submitter, globex_reviewer
):
    """Globex approves, then adds the signal itself: its vote no longer counts towards the
    quorum, and the admin's column says so."""
    set_policy(quorum=2)
    entry = submit_entry(acme_submitter)
    assert approve(globex_reviewer, entry).status_code == 200
    assert vote_tally(entry_id=entry.pk) == (1, 0)
    globex_submitter.submit(signal={"type": entry.signal_type, "value": entry.value})

    page = connie.get(CHANGELIST, {"state__exact": "pending"}).content.decode()

    assert vote_tally(entry_id=entry.pk) == (0, 0)
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{entry.value[:16]}(?:(?!</tr>).)*</tr>", page, re.S)
    assert row is not None
    assert '<td class="field-approvals">0 / 0</td>' in row.group(0)


def _entry_page(client: Client, entry) -> str:
    response = client.get(f"{CHANGELIST}{entry.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_queue_shows_the_longest_waiting_entry_first(connie, acme_submitter):
    first, reopened, last = (submit_entry(acme_submitter) for _ in range(3))
    # The middle one has waited longest in its state (say, it was reopened long ago).
    Entry.objects.filter(pk=reopened.pk).update(state_changed_at=timezone.now() - timedelta(days=3))

    page = connie.get(CHANGELIST, {"state__exact": "pending"}).content.decode()

    positions = [page.index(e.value) for e in (reopened, first, last)]
    assert positions == sorted(positions)


def test_hashes_are_shown_in_full_ready_to_copy(connie, acme_submitter):
    entry = submit_entry(acme_submitter)
    contribution = entry.contributions.get()

    queue = connie.get(CHANGELIST).content.decode()
    page = _entry_page(connie, entry)

    copyable = '<code class="copyable" style="user-select:all;word-break:break-all">{}</code>'
    assert copyable.format(entry.value) in queue
    assert copyable.format(entry.value) in page
    assert copyable.format(contribution.content_hash) in page


def test_times_are_shown_with_their_time_zone(connie, acme_submitter):
    entry = submit_entry(acme_submitter)
    shown = timezone.localtime(Entry.objects.get(pk=entry.pk).state_changed_at)

    queue = connie.get(CHANGELIST).content.decode()
    page = _entry_page(connie, entry)

    stamp = shown.strftime("%H:%M:%S") + " UTC"
    assert stamp in queue
    assert stamp in page
    assert re.search(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d:\d\d UTC", page)


def test_a_pending_entry_is_approved_from_its_page_with_a_reason(connie, acme_submitter):
    entry = submit_entry(acme_submitter)
    page = _entry_page(connie, entry)
    assert 'name="decision" value="approve"' in page
    assert 'name="decision" value="reject"' in page
    assert 'value="confirm"' not in page
    decide = f"{CHANGELIST}{entry.pk}/decide/"

    refused = connie.post(decide, {"decision": "approve", "reason": ""}, follow=True)
    assert "Give a reason for the ruling." in refused.content.decode()
    assert state_of(entry) == "pending"

    done = connie.post(decide, {"decision": "approve", "reason": "seen the video"}, follow=True)

    assert "the entry is now vetted" in done.content.decode()
    assert state_of(entry) == "vetted"
    decision = Decision.objects.get(entry=entry)
    assert (decision.kind, decision.verdict, decision.reason) == (
        "admin",
        "approve",
        "seen the video",
    )
    (event,) = events("entry.vetted", entry)
    assert (event.actor_label, event.data["reason"]) == ("connie", "seen the video")
    assert 'name="decision"' not in _entry_page(connie, entry)  # nothing left to decide


def test_a_dispute_is_resolved_from_the_entry_page(
    connie, acme_submitter, globex_reviewer, globex_submitter
):
    set_policy(dispute_threshold=1)
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry)
    feedback(globex_reviewer, entry, "false_positive")
    assert state_of(entry) == "disputed"
    page = _entry_page(connie, entry)
    assert 'value="confirm"' in page and 'value="reject_dispute"' in page

    connie.post(f"{CHANGELIST}{entry.pk}/decide/", {"decision": "reject_dispute", "reason": "news"})

    assert state_of(entry) == "rejected"
    (event,) = events("entry.dispute_resolved", entry)
    assert event.data["outcome"] == "reject"


def test_only_consortium_admins_decide_from_the_page(auditor, acme_submitter):
    entry = submit_entry(acme_submitter)
    client = Client()
    client.force_login(auditor.user)

    response = client.post(
        f"{CHANGELIST}{entry.pk}/decide/", {"decision": "approve", "reason": "x"}
    )

    assert response.status_code == 403
    assert state_of(entry) == "pending"


def test_an_audit_event_links_to_its_entry_and_its_inclusion_proof(connie, acme_submitter, auditor):
    entry = submit_entry(acme_submitter)
    sequence_pending()
    accepted = AuditEvent.objects.get(action="contribution.accepted")
    size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    AuditEvent.objects.create(action="entry.vetted", object_type="entry", object_id=str(entry.pk))

    listing = connie.get("/admin/federation/auditevent/").content.decode()
    detail = connie.get(f"/admin/federation/auditevent/{accepted.pk}/change/").content.decode()

    entry_link = f'<a href="/admin/federation/entry/{entry.pk}/change/">entry {entry.pk}</a>'
    proof = f"/api/v1/log/proof/inclusion?index={accepted.leaf_index}&amp;tree_size={size}"
    assert entry_link in detail and proof in detail
    assert listing.count(entry_link) == 2  # the contribution's event and the entry's own
    assert "not yet sequenced" in listing
    served = auditor.client.get(proof.replace("&amp;", "&"))
    assert served.status_code == 200
    assert served.json()["leaf_index"] == accepted.leaf_index


def test_the_policy_of_a_decision_is_shown_in_words(connie, acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    approve(globex_reviewer, entry, "matches")

    page = _entry_page(connie, entry)

    assert "Rule: quorum of reviewers&#x27; votes" in page
    assert "Needed 1 approval (or rejections)" in page
    assert (
        "Hub policy then: quorum 1, trusted members auto-vetted: yes, dispute threshold 2" in page
    )
    assert "{&quot;auto_vet_trusted&quot;" not in page
