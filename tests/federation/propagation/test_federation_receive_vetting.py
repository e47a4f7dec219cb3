"""The inbound policy ``trust`` on received adds (docs/federation.md, "What is stored"): an add
stored by the batch moves its entry (locked since it was written), and so does one stored before
whose second receipt comes from a trusted peer; each move is audited once."""

import pytest

from federation.contributions.models import Entry
from federation.propagation.models import Receipt
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from members.models import Peer
from tests.support.federation import RemoteHub, contribution_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def bravo(db):
    return RemoteHub("bravo.example")


@pytest.fixture
def charlie(db):
    return RemoteHub("charlie.example", policy=Peer.InboundPolicy.REVIEW)


def _entry(document):
    signal = document["signal"]
    return Entry.objects.get(signal_type=signal["type"], value=signal["value"].lower())


def _vetted_entry_ids():
    return sorted(
        int(event.object_id) for event in AuditEvent.objects.filter(action=Action.ENTRY_VETTED)
    )


def test_a_trusted_batch_vets_new_adds_and_adds_received_before_from_a_review_peer(bravo, charlie):
    charlie_member = charlie.member("initech")
    waiting = charlie_member.contribution()
    assert charlie.push([contribution_item(charlie_member, waiting)]).json()["accepted"] == 1
    assert _entry(waiting).state == Entry.State.PENDING

    bravo_member = bravo.member("acme")
    fresh = bravo_member.contribution()
    body = bravo.push(
        [
            contribution_item(bravo_member, fresh),
            contribution_item(charlie_member, waiting, via=[charlie, bravo]),
        ]
    ).json()

    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]
    assert _entry(fresh).state == Entry.State.VETTED
    assert _entry(waiting).state == Entry.State.VETTED
    assert _vetted_entry_ids() == sorted([_entry(fresh).pk, _entry(waiting).pk])
    assert Receipt.objects.filter(contribution__uuid=waiting["uuid"]).count() == 2


def test_a_trusted_add_to_an_entry_in_review_here_vets_it_once(bravo, charlie):
    reviewed = charlie.member("initech")
    first = reviewed.contribution()
    assert charlie.push([contribution_item(reviewed, first)]).json()["accepted"] == 1
    assert _entry(first).state == Entry.State.PENDING and not _vetted_entry_ids()

    member = bravo.member("acme")
    second = member.contribution(signal=first["signal"])
    body = bravo.push([contribution_item(member, second), contribution_item(member, second)]).json()

    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]
    assert _entry(first).state == Entry.State.VETTED
    assert _vetted_entry_ids() == [_entry(first).pk]
    third = contribution_item(member, member.contribution(signal=first["signal"]))
    assert bravo.push([third]).json()["accepted"] == 1
    assert _vetted_entry_ids() == [_entry(first).pk]  # already vetted: no second move


def test_a_trusted_peers_vetted_add_of_a_new_signal_is_stored_vetted_and_moved_once(bravo):
    """Its entry is inserted vetted (no UPDATE after the insert) and its move from pending is
    recorded as if it had been updated: one event, after the acceptance, one change row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from federation.sync.models import EntryChange

    member = bravo.member("acme")
    fresh = member.contribution()
    with CaptureQueriesContext(connection) as captured:
        assert bravo.push([contribution_item(member, fresh)]).json()["accepted"] == 1

    entry = _entry(fresh)
    assert entry.state == Entry.State.VETTED and entry.review_round == 1
    assert entry.state_changed_at == entry.created_at == entry.updated_at
    vetted = AuditEvent.objects.get(action=Action.ENTRY_VETTED)
    assert vetted.object_id == str(entry.pk)
    assert (vetted.data["from"], vetted.data["to"]) == ("pending", "vetted")
    accepted = AuditEvent.objects.get(action=Action.CONTRIBUTION_ACCEPTED)
    assert accepted.pk < vetted.pk
    assert list(EntryChange.objects.filter(entry=entry).values_list("reason", flat=True)) == [
        "vetted"
    ]
    if connection.vendor == "postgresql":
        updates = [q["sql"] for q in captured if "UPDATE federation_entry" in q["sql"]]
        assert not updates


def test_two_vetted_adds_of_one_new_signal_in_a_trusted_batch_vet_its_entry_once(bravo):
    first, second = bravo.member("acme"), bravo.member("globex")
    signal = first.contribution()["signal"]
    body = bravo.push(
        [
            contribution_item(first, first.contribution(signal=signal)),
            contribution_item(second, second.contribution(signal=signal)),
        ]
    ).json()

    assert body["accepted"] == 2
    entry = Entry.objects.get()
    assert entry.state == Entry.State.VETTED
    assert _vetted_entry_ids() == [entry.pk]


def test_a_new_entry_vetted_in_a_triangle_owes_nothing_and_a_peer_left_out_is_still_owed(bravo):
    """Vetting a new entry writes outbox rows only for linked peers its receipt does not name:
    none in a triangle (the third hub in ``sent_to``), and the add for a peer added to it."""
    from federation.propagation.models import OutboxItem
    from federation.sync.models import EntryChange
    from tests.support.sending import make_peer

    delta = make_peer("delta.example")
    member = bravo.member("acme")
    alone = {**contribution_item(member), "sent_to": ["delta.example"]}
    assert bravo.push([alone]).json()["accepted"] == 1
    entry = Entry.objects.get()
    assert entry.state == Entry.State.VETTED
    assert not OutboxItem.objects.exists()
    assert list(EntryChange.objects.filter(entry=entry).values_list("reason", flat=True)) == [
        "vetted"
    ]

    echo = make_peer("echo.example")
    both = [{**contribution_item(member), "sent_to": ["delta.example"]} for _ in range(2)]
    assert bravo.push(both).json()["accepted"] == 2
    assert sorted(OutboxItem.objects.values_list("peer_id", flat=True)) == [echo.pk, echo.pk]
    assert delta.pk not in OutboxItem.objects.values_list("peer_id", flat=True)
