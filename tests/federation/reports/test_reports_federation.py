"""Federation in the auditor reports (docs/reports.md): an entry's history says where it was sent
and where it came from, with the log leaves of ``federation.sent`` and ``federation.received``;
its events in leaf order; policies in words; the transparency report's federation figures (pulls
by peers among them); one date widget; CSV timestamps in the signed form."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from federation.contributions.models import Entry
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import PulledItem
from federation.propagation.wire import item_digest
from federation.sync.sequencer import sync_sequence_pending
from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record
from federation.transparency.models import AuditEvent, Checkpoint
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.federation import RemoteHub, contribution_item
from tests.support.sending import (
    Receiver,
    feed_reader,
    make_peer,
    vetted_entry,
)

pytestmark = pytest.mark.django_db

SIGNED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def auditor_client(auditor) -> Client:
    client = Client()
    client.force_login(auditor.user)
    return client


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def proof_link(event: AuditEvent) -> str:
    tree_size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    return f"/api/v1/log/proof/inclusion?index={event.leaf_index}&amp;tree_size={tree_size}"


def test_the_history_links_each_sending_to_its_federation_sent_leaf(acme_submitter, auditor_client):
    with Receiver() as receiver:
        bravo = make_peer("bravo.hub", url=receiver.url)
        entry = vetted_entry(acme_submitter)
        assert outbox_drain(peer_id=bravo.pk, lane="normal").delivered == 1
    sequence_pending()
    sent = AuditEvent.objects.get(action=Action.FEDERATION_SENT)

    html = auditor_client.get(f"/reports/entries/{entry.pk}/").content.decode()

    section = html[html.index('id="sent"') : html.index('id="received"')]
    assert "bravo.hub" in section and "Delivered" in section
    assert proof_link(sent) in section and f"leaf {sent.leaf_index}" in section
    assert "Nothing arrived from a peer." in html

    rows = csv_rows(auditor_client.get(f"/reports/entries/{entry.pk}.csv"))
    (sent_row,) = [r for r in rows if r["kind"] == "sent"]
    assert sent_row["member"] == "bravo.hub" and sent_row["leaf_index"] == str(sent.leaf_index)
    assert all(SIGNED_TIME.fullmatch(r["when"]) for r in rows), [r["when"] for r in rows]


def test_the_history_of_a_foreign_entry_names_its_arrival_and_why_it_is_vetted(auditor_client):
    bravo = RemoteHub("bravo.example")
    item = contribution_item(bravo.member("initech"))
    assert bravo.push([item]).status_code == 200
    entry = Entry.objects.get(value=item["contribution"]["signal"]["value"])
    sequence_pending()
    received = AuditEvent.objects.get(action=Action.FEDERATION_RECEIVED)

    html = auditor_client.get(f"/reports/entries/{entry.pk}/").content.decode()

    section = html[html.index('id="received"') :]
    assert "bravo.example" in section and "push" in section
    assert proof_link(received) in section
    assert "Rule: trusted from peer bravo.example: its vetting" in html
    assert "Not sent to any peer." in html


def test_an_entrys_events_are_in_leaf_order(acme_submitter, auditor_client):
    entry = vetted_entry(acme_submitter)
    response = acme_submitter.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )
    assert response.status_code == 201, response.json()
    sequence_pending()

    response = auditor_client.get(f"/reports/entries/{entry.pk}/")

    events = [logged.event for logged in response.context["history"].events]
    leaves = [event.leaf_index for event in events]
    assert None not in leaves and leaves == sorted(leaves)
    assert {"contribution.accepted", "entry.vetted", "entry.retracted"} <= {
        event.action for event in events
    }


def test_the_transparency_report_has_federation_figures_per_peer(acme_submitter, auditor_client):
    with Receiver() as receiver:
        bravo = make_peer("bravo.hub", url=receiver.url)
        entry = vetted_entry(acme_submitter)
        retract = acme_submitter.submit(
            action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
        )
        assert retract.status_code == 201
        assert outbox_drain(peer_id=bravo.pk, lane="normal").delivered == 2
    charlie = RemoteHub("charlie.example")
    assert charlie.push([contribution_item(charlie.member("initech"))]).status_code == 200
    audit_record(
        AuditRecord(
            action=Action.FEDERATION_DEAD_LETTERED,
            actor=Actor.system("outbox"),
            object_type="peer",
            object_id="bravo.hub",
            data={"items": [1, 2, 3], "attempts": 8, "message": "HTTP 503"},
        )
    )
    period = timezone.now().strftime("%Y-%m")

    response = auditor_client.get(f"/reports/transparency/?period={period}")

    by_peer = {row["peer"]: row for row in response.context["report"].federation}
    assert by_peer["bravo.hub"] == {
        "peer": "bravo.hub",
        "sent_items": 2,
        "sent_entries": 1,
        "sent_retractions": 1,
        "pulled_items": 0,
        "pulled_entries": 0,
        "pulled_retractions": 0,
        "received_items": 0,
        "received_entries": 0,
        "received_retractions": 0,
        "dead_lettered": 3,
    }
    assert by_peer["charlie.example"]["received_entries"] == 1
    html = response.content.decode()
    assert 'id="federation-figures"' in html and "1 retraction propagated" in html
    rows = csv_rows(auditor_client.get(f"/reports/transparency.csv?period={period}"))
    assert {
        "section": "federation with bravo.hub",
        "item": "retractions propagated",
        "count": "1",
    } in rows


def pulled_figures(client: Client, period: str) -> tuple[int, int, int]:
    """The one peer's items, entries and retractions pulled, in the report for ``period``."""
    (row,) = client.get(f"/reports/transparency/?period={period}").context["report"].federation
    return row["pulled_items"], row["pulled_entries"], row["pulled_retractions"]


def test_the_transparency_report_counts_the_items_a_peer_first_pulled_in_the_period(
    acme_submitter, auditor_client
):
    kept = vetted_entry(acme_submitter)
    withdrawn = vetted_entry(acme_submitter)
    retract = acme_submitter.submit(
        action="retract",
        labels=[],
        signal={"type": withdrawn.signal_type, "value": withdrawn.value},
    )
    assert retract.status_code == 201
    sync_sequence_pending()
    delta, reader = feed_reader("delta.hub")
    offered = []
    for _ in range(2):  # read from the start twice: the second page offers the same items again
        response = reader.get("/api/v1/federation/feed", {"after": 0})
        assert response.status_code == 200, response.content
        offered.append(sorted(item_digest(item) for item in response.json()["batch"]["items"]))
    pulled = PulledItem.objects.filter(peer=delta).order_by("id")
    assert sorted(p.digest for p in pulled) == offered[0] and len(offered[0]) == 3
    # The log's pull pages name each offer (both pages here); the report counts each item once.
    pages = AuditEvent.objects.filter(action=Action.FEDERATION_SENT, data__via="pull")
    assert [sorted(e.data["items"]) for e in pages.order_by("id")] == offered
    period = timezone.now().strftime("%Y-%m")

    response = auditor_client.get(f"/reports/transparency/?period={period}")

    (row,) = response.context["report"].federation
    assert row["peer"] == "delta.hub"
    assert (row["pulled_items"], row["pulled_entries"], row["pulled_retractions"]) == (3, 2, 1)
    assert (row["sent_items"], row["received_items"]) == (0, 0)  # nothing delivered by push
    assert '<th colspan="3" class="group">Pulled by the peer</th>' in response.content.decode()
    rows = csv_rows(auditor_client.get(f"/reports/transparency.csv?period={period}"))
    section = [(r["item"], r["count"]) for r in rows if r["section"] == "federation with delta.hub"]
    assert ("items pulled by the peer (first pulls)", "3") in section
    assert ("entries pulled", "2") in section and ("retractions pulled", "1") in section

    # Counted in the period of the first pull: a row pulled last month leaves this month's count.
    earlier = pulled.filter(entry=kept).get()
    earlier.pulled_at = timezone.now().replace(day=1) - timedelta(days=1)
    earlier.save(update_fields=["pulled_at"])
    assert pulled_figures(auditor_client, period) == (2, 1, 1)
    assert pulled_figures(auditor_client, earlier.pulled_at.strftime("%Y-%m")) == (1, 1, 0)


def test_both_dates_of_the_transparency_report_use_the_same_widget(auditor_client):
    html = auditor_client.get("/reports/transparency/").content.decode()
    assert re.search(r'<input type="date" name="from"', html)
    assert re.search(r'<input type="date" name="to"', html)


def test_csv_timestamps_are_in_the_signed_form(acme_submitter, auditor_client):
    vetted_entry(acme_submitter)
    rows = csv_rows(auditor_client.get("/reports/export/contributions.csv"))
    assert rows and all(
        SIGNED_TIME.fullmatch(r["received_at"]) and SIGNED_TIME.fullmatch(r["created_at"])
        for r in rows
    )
