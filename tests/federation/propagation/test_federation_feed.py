"""The pull feed (federation/propagation/feed.py): ``GET /api/v1/federation/feed`` gives a peer a
hub-signed batch of what it is owed after a stream position, by the outbox's rules."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import Max
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from federation.contributions.models import Contribution, Entry
from federation.hubkey import hub_public_key
from federation.propagation.attestation_roots import ROOTED_FIELDS
from federation.propagation.models import KeyBinding, OutboxItem, PeerLink, PulledItem
from federation.propagation.peers import peer_update
from federation.propagation.selectors import MOOT_PULLED, live_dead_letters, with_moot_reason
from federation.propagation.wire import item_digest, parse_batch
from federation.signing import format_timestamp
from federation.sync.changes import sync_changes_record
from federation.sync.models import EntryChange, SyncState
from federation.sync.sequencer import sync_changes_compact, sync_sequence_pending
from federation.transparency.models import AuditEvent
from federation.transparency.sequencer import sequence_pending
from members.services import signing_key_revoke
from tests.support.sending import ACTOR, feed_reader, submit, vetted_entry

FEED = "/api/v1/federation/feed"
HORIZON = "Concordat-Feed-Horizon"


@pytest.fixture
def bravo(db):
    peer, client = feed_reader("bravo.hub")
    peer.client = client
    return peer


def page(peer, **params):
    body, batch, _horizon = page_and_horizon(peer, **params)
    return body, batch


def page_and_horizon(peer, **params):
    response = peer.client.get(FEED, params)
    assert response.status_code == 200, response.content
    body = response.json()
    batch = parse_batch(body)
    assert batch.envelope.verify(hub_public_key())
    assert (batch.receiver, batch.problems) == ("bravo.hub", ())
    return body, batch, int(response[HORIZON])


def uuids(body):
    return [
        (i["contribution"]["action"], i["contribution"]["uuid"]) for i in body["batch"]["items"]
    ]


def test_the_feed_gives_the_shared_entries_a_peer_is_owed(acme_submitter, bravo):
    shared = vetted_entry(acme_submitter)
    vetted_entry(acme_submitter, scope="hub")  # never leaves
    submit(acme_submitter)  # pending: not shared
    sync_sequence_pending()

    body, batch = page(bravo, after=0)

    assert [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]] == [shared.value]
    state = SyncState.objects.get(pk=1)
    assert batch.feed == {"after": 0, "next": state.last_position, "more": False}
    again, _ = page(bravo, after=batch.feed["next"])
    assert again["batch"]["items"] == []
    assert again["batch"]["feed"] == {
        "after": state.last_position,
        "next": state.last_position,
        "more": False,
    }


def test_a_retracted_entry_comes_as_its_add_then_its_retract(acme_submitter, bravo):
    entry = vetted_entry(acme_submitter)
    response = acme_submitter.submit(
        action="retract", signal={"type": entry.signal_type, "value": entry.value}, labels=[]
    )
    assert response.status_code == 201
    sync_sequence_pending()

    body, _ = page(bravo)

    assert [action for action, _ in uuids(body)] == ["add", "retract"]
    assert [i["attestations"][-1]["attestation"]["state"] for i in body["batch"]["items"]] == [
        "retracted",
        "retracted",
    ]


def test_an_entry_rejected_after_a_dispute_comes_as_an_entry_item(acme_submitter, bravo):
    from federation.lifecycle import entries_transition

    entry = vetted_entry(acme_submitter)
    for state in ("disputed", "rejected"):
        entries_transition(entry_ids=[entry.pk], to=state, actor=ACTOR)
    sync_sequence_pending()

    body, _ = page(bravo)

    (item,) = body["batch"]["items"]
    assert item["type"] == "entry" and item["attestations"][0]["attestation"]["state"] == "rejected"


def test_the_peers_policy_applies(acme_submitter, bravo):
    peer_update(peer=bravo, outbound_signal_types=["md5"], actor=ACTOR)
    vetted_entry(acme_submitter)  # PDQ
    md5 = vetted_entry(acme_submitter, signal={"type": "md5", "value": "a" * 32})
    sync_sequence_pending()
    body, _ = page(bravo)
    assert [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]] == [md5.value]


def test_pages_follow_the_stream(acme_submitter, bravo):
    values = [vetted_entry(acme_submitter).value for _ in range(5)]
    sync_sequence_pending()
    seen, after, pages = [], 0, 0
    while True:
        body, batch = page(bravo, after=after, limit=2)
        pages += 1
        seen += [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]]
        assert batch.feed["after"] == after
        after = batch.feed["next"]
        if not batch.feed["more"]:
            break
    assert seen == values and pages == 3


def test_a_cursor_below_the_compaction_horizon_is_stale(acme_submitter, bravo):
    vetted_entry(acme_submitter)
    sync_sequence_pending()
    SyncState.objects.filter(pk=1).update(compacted_through=5)
    response = bravo.client.get(FEED, {"after": 3})
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "stale_cursor"
    assert bravo.client.get(FEED, {"after": 0}).status_code == 200  # from the start: never stale


def _retract(submitter, entry):
    response = submitter.submit(
        action="retract", signal={"type": entry.signal_type, "value": entry.value}, labels=[]
    )
    assert response.status_code == 201, response.content


def _drop_the_removal_of(entry):
    """Age ``entry``'s changes past the retention and compact: its removal is dropped."""
    sync_sequence_pending()
    EntryChange.objects.filter(entry=entry).update(recorded_at=timezone.now() - timedelta(days=91))
    assert sync_changes_compact().removals == 1


def test_a_puller_from_the_start_reads_every_page_past_a_removal_compaction_dropped(
    acme_submitter, bravo
):
    """The dropped removal lies above the first pages' cursors, but a puller that began after
    the compaction never held its entry: with the horizon of its first page, every page answers."""
    kept = [vetted_entry(acme_submitter).value for _ in range(3)]
    gone = vetted_entry(acme_submitter)
    sync_sequence_pending()
    _retract(acme_submitter, gone)
    _drop_the_removal_of(gone)
    compacted_through = SyncState.objects.get(pk=1).compacted_through

    body, batch, horizon = page_and_horizon(bravo, after=0, limit=1)
    assert horizon == compacted_through > batch.feed["next"] > 0
    # A puller that sends no horizon is refused there, as before.
    response = bravo.client.get(FEED, {"after": batch.feed["next"], "limit": 1})
    assert response.status_code == 410 and response.json()["error"]["code"] == "stale_cursor"

    seen, pages = [], 1
    seen += [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]]
    while batch.feed["more"]:
        after = batch.feed["next"]
        body, batch, answered = page_and_horizon(bravo, after=after, horizon=horizon, limit=1)
        assert answered == horizon and batch.feed["after"] == after
        seen += [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]]
        pages += 1
    assert pages >= 3 and seen == kept
    assert batch.feed["next"] == SyncState.objects.get(pk=1).last_position


def test_a_compaction_after_the_puller_began_dropping_a_removal_above_its_horizon_is_stale(
    acme_submitter, bravo
):
    first, second = vetted_entry(acme_submitter), vetted_entry(acme_submitter)
    early = vetted_entry(acme_submitter)
    sync_sequence_pending()
    _retract(acme_submitter, early)
    _drop_the_removal_of(early)
    body, batch, horizon = page_and_horizon(bravo, after=0, limit=1)
    assert [i["contribution"]["signal"]["value"] for i in body["batch"]["items"]] == [first.value]
    assert horizon > batch.feed["next"]

    _retract(acme_submitter, second)  # the puller may hold second: its removal is owed to it
    _drop_the_removal_of(second)

    params = {"after": batch.feed["next"], "horizon": horizon, "limit": 1}
    response = bravo.client.get(FEED, params)
    assert response.status_code == 410 and response.json()["error"]["code"] == "stale_cursor"
    # From the start again: the new horizon, and no page refused.
    _body, batch, again = page_and_horizon(bravo, after=0)
    assert again == SyncState.objects.get(pk=1).compacted_through > horizon
    assert batch.feed["more"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 501},
        {"limit": 0},
        {"after": -1},
        {"after": "x"},
        {"after": 2**53},  # not representable in the signed page's JSON
        {"after": 10**30},
        {"horizon": -1},
        {"horizon": "x"},
        {"horizon": 2**53},
        {"after": 5, "horizon": "1.5"},
    ],
)
def test_bad_parameters_are_refused(bravo, params):
    response = bravo.client.get(FEED, params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["details"]["field"] in params
    assert response.json()["error"]["details"]["field"] == list(params)[-1]


def test_a_page_with_items_is_recorded_as_sent_by_pull_and_an_empty_one_is_not(
    acme_submitter, bravo
):
    vetted_entry(acme_submitter)
    vetted_entry(acme_submitter)
    sync_sequence_pending()
    before = AuditEvent.objects.filter(action="federation.sent").count()

    body, batch = page(bravo, after=0)

    (sent,) = AuditEvent.objects.filter(action="federation.sent")[before:]
    assert (sent.object_type, sent.object_id) == ("peer", "bravo.hub")
    assert (sent.actor_type, sent.actor_id) == ("hub", "bravo.hub")  # the peer asked for it
    assert sent.data == {
        "peer": "bravo.hub",
        "batch": str(batch.batch_id),
        "via": "pull",
        "items": [item_digest(item) for item in body["batch"]["items"]],
    }
    assert len(sent.data["items"]) == 2
    page(bravo, after=batch.feed["next"])  # nothing more: no event
    assert AuditEvent.objects.filter(action="federation.sent").count() == before + 1


def test_a_revocation_whose_push_dead_lettered_comes_as_a_key_item(acme_submitter, bravo):
    vetted_entry(acme_submitter)
    sync_sequence_pending()
    _body, first = page(bravo, after=0)  # the key is bound on first use
    key = signing_key_revoke(key=acme_submitter.signing_key, reason="compromised", actor=ACTOR)
    (row,) = OutboxItem.objects.filter(kind="key", peer=bravo)
    row.state = OutboxItem.State.DEAD  # its push never arrived
    row.save(update_fields=["state"])
    sync_sequence_pending()

    body, batch = page(bravo, after=first.feed["next"])

    (item,) = body["batch"]["items"]  # the key's latest binding, once
    assert (item["type"], item["path"]) == ("key", [settings.HUB_ID])
    assert item["key"]["binding"]["key_id"] == key.key_id
    assert item["key"]["binding"]["revoked_at"] == format_timestamp(key.revoked_at)
    (parsed,) = batch.items
    assert parsed.binding.document["revoked_at"] is not None
    state = SyncState.objects.get(pk=1)
    assert batch.feed == {"after": first.feed["next"], "next": state.last_position, "more": False}
    assert KeyBinding.objects.filter(position__isnull=True).count() == 0
    assert state.last_position == KeyBinding.objects.aggregate(Max("position"))["position__max"]


def test_a_key_item_goes_only_to_a_peer_sent_or_owed_the_keys_contributions(acme_submitter, bravo):
    _md5_only, charlie = feed_reader("charlie.hub", outbound_signal_types=["md5"])
    vetted_entry(acme_submitter)  # pdq: bravo may have it, charlie not
    sync_sequence_pending()
    page(bravo, after=0)  # binds the key
    signing_key_revoke(key=acme_submitter.signing_key, reason="compromised", actor=ACTOR)
    sync_sequence_pending()

    _body, batch = page(bravo, after=0)
    assert [item.type for item in batch.items] == ["contribution", "key"]
    response = charlie.get(FEED, {"after": 0})
    assert response.status_code == 200 and response.json()["batch"]["items"] == []
    # A peer linked after the entry was shared has no outbox row for it: it is owed the key
    # because the feed owes it the key's contribution.
    late, delta = feed_reader("delta.hub")
    assert not OutboxItem.objects.filter(peer=late).exists()
    items = delta.get(FEED, {"after": 0}).json()["batch"]["items"]
    assert [item["type"] for item in items] == ["contribution", "key"]
    assert items[1]["key"]["binding"]["revoked_at"] is not None


def test_a_page_reads_no_position_given_after_it_read_the_streams_end(acme_submitter, bravo):
    # Entry changes and key bindings are read in two statements: a binding numbered between
    # them (here: beyond the end the page read first) must not move the cursor past a change
    # the first statement could not see.
    vetted_entry(acme_submitter)
    sync_sequence_pending()
    page(bravo, after=0)  # binds the key
    sync_sequence_pending()
    end = SyncState.objects.get(pk=1).last_position
    KeyBinding.objects.update(position=end + 2)  # as if numbered after the page read the end

    _body, batch = page(bravo, after=end - 1)

    assert batch.feed == {"after": end - 1, "next": end, "more": False}
    assert [item.type for item in batch.items] == []


def test_the_largest_cursor_signed_json_holds_is_served(bravo):
    _body, batch = page(bravo, after=2**53 - 1)
    assert batch.feed == {"after": 2**53 - 1, "next": 2**53 - 1, "more": False}


def test_only_an_authenticated_active_peer_reads_the_feed(bravo, acme_submitter):
    assert APIClient().get(FEED).status_code == 401
    assert acme_submitter.client.get(FEED).status_code == 401  # a member's token opens nothing
    peer_update(peer=bravo, state="suspended", actor=ACTOR)
    response = bravo.client.get(FEED)
    assert response.status_code == 403 and response.json()["error"]["code"] == "peer_suspended"


def _moot(row: OutboxItem) -> str | None:
    return with_moot_reason(OutboxItem.objects.filter(pk=row.pk)).get().moot_reason


def test_a_dead_letter_is_moot_once_the_peer_pulls_past_it_and_a_revocation_only_when_pulled(
    acme_submitter, bravo
):
    vetted_entry(acme_submitter)
    (dead,) = OutboxItem.objects.filter(peer=bravo)
    OutboxItem.objects.filter(pk=dead.pk).update(state="dead")  # its push never arrived
    sync_sequence_pending()
    assert _moot(dead) is None

    _body, first = page(bravo, after=0)  # served, but not yet stored by bravo as far as we know
    assert PeerLink.objects.get(peer=bravo).peer_pulled_through == 0
    assert _moot(dead) is None and live_dead_letters().count() == 1

    page(bravo, after=first.feed["next"])  # bravo stored the first page: it asks from its end
    assert PeerLink.objects.get(peer=bravo).peer_pulled_through == first.feed["next"]
    assert _moot(dead) == MOOT_PULLED and live_dead_letters().count() == 0
    # An entry back in review is offered by no page: what the peer pulled says nothing then.
    Entry.objects.filter(pk=dead.entry_id).update(state="pending")
    assert _moot(dead) is None
    Entry.objects.filter(pk=dead.entry_id).update(state="vetted")
    # Nor does a page read before the entry's latest change (say it went back to review and was
    # vetted again, with no new outbox row: the dead letter is all that says bravo is owed it).
    sync_changes_record(entry_ids=[dead.entry_id], reason="vetted")
    sync_sequence_pending()
    assert _moot(dead) is None and live_dead_letters().count() == 1
    _body, again = page(bravo, after=first.feed["next"])
    page(bravo, after=again.feed["next"])
    assert _moot(dead) == MOOT_PULLED and live_dead_letters().count() == 0
    first = again  # bravo's position from here on

    # A new entry's dead letter, after the position, matters; so does a revocation whose push
    # died, until bravo has pulled the revocation itself.
    later = vetted_entry(acme_submitter)
    (late,) = OutboxItem.objects.filter(peer=bravo, entry=later)
    signing_key_revoke(key=acme_submitter.signing_key, reason="compromised", actor=ACTOR)
    (revocation,) = OutboxItem.objects.filter(peer=bravo, kind="key")
    OutboxItem.objects.filter(pk__in=[late.pk, revocation.pk]).update(state="dead")
    sync_sequence_pending()
    page(bravo, after=first.feed["next"])  # bravo asks again from the same place
    assert (_moot(revocation), _moot(late)) == (None, None)
    assert _moot(dead) == MOOT_PULLED
    assert {r.pk for r in live_dead_letters()} == {revocation.pk, late.pk}

    _body, second = page(bravo, after=first.feed["next"])
    page(bravo, after=second.feed["next"])
    assert (_moot(revocation), _moot(late)) == (MOOT_PULLED, MOOT_PULLED)
    assert list(live_dead_letters()) == []
    # A cursor beyond the stream's end records no position beyond it.
    page(bravo, after=second.feed["next"] + 1000)
    assert PeerLink.objects.get(peer=bravo).peer_pulled_through == second.feed["next"]


def test_the_entry_page_says_which_peers_pulled_its_items_with_the_log_leaf(
    acme_submitter, bravo, consortium_admin, auditor
):
    entry = vetted_entry(acme_submitter)
    add = Contribution.objects.get(entry=entry)
    sync_sequence_pending()
    admin = Client()
    admin.force_login(consortium_admin.user)
    url = f"/admin/federation/entry/{entry.pk}/change/"
    assert "No peer has pulled it from this hub" in admin.get(url).content.decode()

    body, _first = page(bravo, after=0)
    page(bravo, after=0)  # offered again: still its first pull only
    sequence_pending()

    (pulled,) = PulledItem.objects.filter(entry=entry)
    assert (pulled.peer, pulled.contribution, pulled.digest) == (
        bravo,
        add,
        item_digest(body["batch"]["items"][0]),
    )
    html = admin.get(url).content.decode()
    section = html[html.index("Pulled by peers") : html.index("Arrived from peers")]
    row = section[section.index("<td>bravo.hub</td>") :].split("</tr>")[0]
    assert f"add {add.uuid}" in row and "leaf " in row
    assert AuditEvent.objects.get(pk=pulled.event_id).data["items"] == [pulled.digest]
    # The auditor's history of the entry, and its CSV, say the same.
    reader = Client()
    reader.force_login(auditor.user)
    history = reader.get(f"/reports/entries/{entry.pk}/").content.decode()
    pulled_section = history[history.index("Pulled by peers (1)") : history.index('id="received"')]
    assert "bravo.hub" in pulled_section and str(add.uuid) in pulled_section
    response = reader.get(f"/reports/entries/{entry.pk}.csv")
    csv = b"".join(response.streaming_content).decode()
    (line,) = [row for row in csv.splitlines() if row.startswith("pulled,")]
    assert "bravo.hub" in line and f"digest={pulled.digest}" in line


def test_a_puller_that_asks_for_roots_gets_the_pages_attestations_under_one(
    acme_submitter, bravo, settings
):
    """``Concordat-Attestation-Roots: 1`` on the request: this hub's attestations on the page
    come under one root (docs/federation.md, "The pull feed"); without it, or with this hub's
    FEDERATION_ATTESTATION_ROOTS off, each is signed alone."""
    for _ in range(3):
        vetted_entry(acme_submitter)
    sync_sequence_pending()

    def pairs(**headers):
        response = bravo.client.get(FEED, {"after": 0}, headers=headers)
        assert response.status_code == 200, response.content
        batch = parse_batch(response.json())
        assert batch.envelope.verify(hub_public_key()) and batch.problems == ()
        items = response.json()["batch"]["items"]
        return response.get("Concordat-Attestation-Roots"), [i["attestations"] for i in items]

    said, alone = pairs()
    assert said is None
    assert [[a.keys() for a in pair] for pair in alone] == [[{"attestation", "signature"}]] * 3
    said, rooted = pairs(**{"Concordat-Attestation-Roots": "1"})
    assert said == "1"
    assert [[a.keys() for a in pair] for pair in rooted] == [[ROOTED_FIELDS]] * 3
    assert [(a["index"], a["size"]) for (a,) in rooted] == [(0, 3), (1, 3), (2, 3)]
    assert len({a["root_signature"] for (a,) in rooted}) == 1
    # The same attestations (made at each page's time), only how they are signed differs.
    assert [{**a["attestation"], "attested_at": 0} for (a,) in rooted] == [
        {**a["attestation"], "attested_at": 0} for (a,) in alone
    ]
    settings.FEDERATION_ATTESTATION_ROOTS = False
    said, refused = pairs(**{"Concordat-Attestation-Roots": "1"})
    assert (
        said is None
        and [[a.keys() for a in p] for p in refused] == [[{"attestation", "signature"}]] * 3
    )
