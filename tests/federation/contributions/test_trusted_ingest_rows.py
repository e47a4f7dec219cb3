"""A trusted member's bulk ingest inserts its new entries vetted (``storage._store_chunk``) rather
than pending and then updated: what it leaves (entries, events, decisions, change rows, TAXII
versions) is the same as the move by UPDATE leaves, for new entries, entries other members left
pending and rejected ones it reopens, across chunks."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.contributions import services, storage
from federation.contributions.models import Entry
from federation.sync.models import EntryChange
from federation.taxii.models import StixObjectVersion
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision
from members.models import Organisation
from tests.support.parties import random_hex
from tests.support.sending import make_peer, rows
from tests.support.vetting import set_policy

pytestmark = pytest.mark.django_db

BULK = "/api/v1/contributions/bulk/"


def _ingest(party) -> tuple[list[tuple], list[str]]:
    """Ingest, in chunks of three: three new signals, one added twice (in two chunks), one
    another member left pending and one rejected; returns the normalised trail of each entry,
    in that order, and the statements sent."""
    new = [random_hex(32) for _ in range(3)]
    pending, rejected = random_hex(32), random_hex(32)
    Entry.objects.create(signal_type="md5", value=pending, state="pending")
    Entry.objects.create(signal_type="md5", value=rejected, state="rejected")
    values = [*new, pending, rejected]
    items = [party.signed(signal={"type": "md5", "value": v}) for v in [*values, new[0]]]
    with CaptureQueriesContext(connection) as captured:
        response = party.client.post(BULK, {"items": items}, format="json")
    assert response.json()["created"] == len(items)
    return [_trail(Entry.objects.get(value=v)) for v in values], [q["sql"] for q in captured]


def _trail(entry: Entry) -> tuple:
    """What an entry's moves left, without ids and times (which differ between runs)."""
    events = AuditEvent.objects.filter(object_type="entry", object_id=str(entry.pk))
    return (
        entry.state,
        entry.review_round,
        entry.state_changed_at == entry.updated_at,
        entry.state_changed_at == entry.created_at,
        [(e.action, e.actor_label, e.data) for e in events.order_by("pk")],
        list(
            Decision.objects.filter(entry=entry)
            .order_by("pk")
            .values_list("kind", "verdict", "review_round", "reason", "policy")
        ),
        list(EntryChange.objects.filter(entry=entry).order_by("pk").values_list("reason")),
        list(StixObjectVersion.objects.filter(entry=entry).values_list("kind", "state")),
    )


def test_new_entries_inserted_vetted_leave_the_trail_of_a_move_by_update(
    acme_submitter, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("elsewhere the upsert does not say which entries it inserted")
    set_policy(auto_vet_trusted=True)
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(trusted=True)
    monkeypatch.setattr(services, "CHUNK_SIZE", 3)
    with monkeypatch.context() as patch:
        patch.setattr(storage, "vetting_every_add", lambda organisation: None)
        by_update, _ = _ingest(acme_submitter)
    inserted_vetted, statements = _ingest(acme_submitter)

    assert inserted_vetted == by_update
    added_twice, new_entry, *_ = inserted_vetted
    assert new_entry[:4] == ("vetted", 1, True, True)
    assert [event[0] for event in new_entry[4]] == ["entry.vetted"]
    assert new_entry[6] == [("vetted",)]  # one change row: the move's
    assert added_twice[6] == [("contributed",)]  # the later chunk's add replaced it
    # The moves by UPDATE are only those of the entries that existed: one per chunk of them.
    updates = [sql for sql in statements if sql.startswith("WITH m (id, from_state)")]
    assert len(updates) == 2


def test_a_member_the_policy_does_not_vet_gets_its_entries_inserted_pending(acme_submitter):
    set_policy(auto_vet_trusted=False)
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(trusted=True)
    item = acme_submitter.signed()
    response = acme_submitter.client.post(BULK, {"items": [item]}, format="json")
    assert response.json()["created"] == 1
    assert Entry.objects.get().state == "pending"
    assert not AuditEvent.objects.filter(object_type="entry").exists()


def _outbox_statements(party, count: int) -> int:
    items = [party.signed() for _ in range(count)]
    with CaptureQueriesContext(connection) as captured:
        response = party.client.post(BULK, {"items": items}, format="json")
    assert response.json()["created"] == count
    return sum("INSERT INTO federation_outboxitem" in q["sql"] for q in captured)


def test_a_request_asks_the_outbox_once_when_no_peer_is_linked(acme_submitter, monkeypatch):
    """Each chunk's vetted entries would owe their adds to the linked peers: once the request's
    first outbox statement found none, its later chunks send none (``peers_read_once``); with a
    linked peer every chunk's statement runs, and its rows are written."""
    if connection.vendor != "postgresql":
        pytest.skip("the SQL writer's statements")
    set_policy(auto_vet_trusted=True)
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(trusted=True)
    monkeypatch.setattr(services, "CHUNK_SIZE", 3)

    assert _outbox_statements(acme_submitter, 9) == 1

    make_peer("bravo.hub")
    assert _outbox_statements(acme_submitter, 9) == 3  # each chunk's move to vetted
    assert len(rows()) == 9
