"""Federation in the admin (docs/operations.md, "Where an entry went"): the entry page says which
peers an entry was sent to and where it came from, the outbox list names entries, signals and
peers, dead letters the peer no longer needs are moot, and the index warns about peers that need
attention; ``manage.py peer status`` shows pull health as text."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from federation.contributions.models import Contribution, Entry
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import OutboxItem, PeerLink, PulledItem, Receipt
from federation.propagation.selectors import peers_health
from federation.transparency.actions import Action, ObjectType
from federation.transparency.models import AuditEvent
from federation.transparency.sequencer import sequence_pending
from members.models import SigningKey
from tests.support.federation import RemoteHub, contribution_item
from tests.support.sending import Receiver, make_peer, vetted_entry

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(consortium_admin) -> Client:
    client = Client()
    client.force_login(consortium_admin.user)
    return client


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_the_entry_page_says_which_peers_it_went_to_with_the_log_leaf_of_the_sending(
    acme_submitter, admin_client
):
    with Receiver() as receiver:
        bravo = make_peer("bravo.hub", url=receiver.url)
        charlie = make_peer("charlie.hub")
        entry = vetted_entry(acme_submitter)
        assert outbox_drain(peer_id=bravo.pk, lane="normal").delivered == 1
    OutboxItem.objects.filter(peer=charlie).update(
        state="dead", attempts=8, last_error="HTTP 503 from charlie"
    )
    sequence_pending()

    html = page(admin_client, f"/admin/federation/entry/{entry.pk}/change/")

    assert "Sent to peers" in html and "Arrived from peers" in html
    bravo_row = html[html.index("<td>bravo.hub</td>") :].split("</tr>")[0]
    assert "Delivered" in bravo_row and "leaf " in bravo_row
    charlie_row = html[html.index("<td>charlie.hub</td>") :].split("</tr>")[0]
    assert "dead letter" in charlie_row and "HTTP 503 from charlie" in charlie_row
    assert "<td>8</td>" in charlie_row  # the attempts
    assert "Nothing arrived from a peer" in html


def test_a_foreign_entry_says_where_it_arrived_from_and_why_it_is_vetted_here(admin_client):
    bravo = RemoteHub("bravo.example")  # trusted: its vetting applies here
    item = contribution_item(bravo.member("initech"))
    assert bravo.push([item]).status_code == 200
    entry = Entry.objects.get(value=item["contribution"]["signal"]["value"])
    assert entry.state == "vetted"

    html = page(admin_client, f"/admin/federation/entry/{entry.pk}/change/")

    assert "trusted from peer bravo.example: its vetting" in html
    arrived = html[html.index("Arrived from peers") :]
    assert "<td>bravo.example</td>" in arrived and "<td>push</td>" in arrived
    assert item["contribution"]["uuid"] in arrived
    assert "Not queued for any peer." in html
    # No empty list of decisions: the entry was decided on the peer's word.
    assert "decision_set" not in html and "Decisions" not in html


def test_the_outbox_lists_entries_and_signals_and_searches_by_value_or_entry_id(
    acme_submitter, admin_client
):
    make_peer("bravo.hub")
    make_peer("charlie.hub")
    first, second = vetted_entry(acme_submitter), vetted_entry(acme_submitter)

    html = page(admin_client, "/admin/federation/outboxitem/")
    for heading in ("Peer", "Entry", "Signal / key", "State", "Attempts"):
        assert heading in html
    assert f"/admin/federation/entry/{first.pk}/change/" in html and first.value[:16] in html

    by_value = page(admin_client, f"/admin/federation/outboxitem/?q={first.value.upper()}")
    assert (
        f"/entry/{first.pk}/change/" in by_value and f"/entry/{second.pk}/change/" not in by_value
    )
    by_id = page(admin_client, f"/admin/federation/outboxitem/?q={second.pk}")
    assert f"/entry/{second.pk}/change/" in by_id and f"/entry/{first.pk}/change/" not in by_id
    by_peer = page(
        admin_client, "/admin/federation/outboxitem/?peer=charlie.hub&kind__exact=contribution"
    )
    assert "bravo.hub</td>" not in by_peer and "charlie.hub</td>" in by_peer
    row = OutboxItem.objects.filter(peer__hub_id="charlie.hub").first()
    detail = page(admin_client, f"/admin/federation/outboxitem/{row.pk}/change/")
    assert "contribution for charlie.hub (pending)" in detail  # the title names the peer


def test_the_outbox_list_costs_the_same_queries_for_many_rows(acme_submitter, admin_client):
    make_peer("bravo.hub")
    vetted_entry(acme_submitter)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            page(admin_client, "/admin/federation/outboxitem/?state__exact=dead")
            page(admin_client, "/admin/federation/outboxitem/")
        return len(captured)

    OutboxItem.objects.update(state="dead")
    few = queries()
    for _ in range(12):
        vetted_entry(acme_submitter)
    OutboxItem.objects.update(state="dead")
    assert queries() == few


def _dead_key_row(peer, signing_key) -> OutboxItem:
    return OutboxItem.objects.create(
        peer=peer, kind="key", signing_key=signing_key, state="dead", last_error="HTTP 502"
    )


def test_a_dead_letter_the_peer_holds_is_moot_and_a_lost_revocation_still_matters(
    acme_submitter, admin_client
):
    bravo = make_peer("bravo.hub")
    held = vetted_entry(acme_submitter)
    OutboxItem.objects.filter(peer=bravo).update(state="dead", last_error="HTTP 503")
    # Bravo has the contribution anyway: it came back here from bravo (its feed or a push).
    Receipt.objects.create(
        contribution=Contribution.objects.get(entry=held),
        peer_hub="bravo.hub",
        via="pull",
        path=["bravo.hub"],
        effective_scope="federation",
        digest="1" * 64,
    )
    key = SigningKey.objects.filter(organisation=acme_submitter.organisation).first()
    revocation = _dead_key_row(bravo, key)

    (health,) = peers_health()
    assert (health.dead_letters, health.live_dead_letters) == (2, 1)

    listed = page(admin_client, "/admin/federation/outboxitem/?state__exact=dead")
    assert "moot: held: the peer sent it here" in listed
    live = page(admin_client, "/admin/federation/outboxitem/?dead=live")
    assert f"/outboxitem/{revocation.pk}/change/" in live and "moot:" not in live
    index = page(admin_client, "/admin/")
    assert "Peer bravo.hub: 1 dead letter." in index

    # Once the revocation is delivered by a later row, nothing is left to warn about.
    OutboxItem.objects.create(peer=bravo, kind="key", signing_key=key, state="delivered")
    assert peers_health()[0].live_dead_letters == 0
    assert "concordat-peer-warnings" not in page(admin_client, "/admin/")


def test_the_index_warns_about_refused_items_and_failing_pulls(acme_submitter, admin_client):
    bravo = make_peer("bravo.hub")
    charlie = make_peer("charlie.hub")
    make_peer("delta.hub")
    vetted_entry(acme_submitter)
    OutboxItem.objects.filter(peer=bravo).update(state="refused", last_error="bad_signature: x")
    PeerLink.objects.update_or_create(
        peer=charlie,
        defaults={"last_pull_error": "cannot reach", "last_pull_error_at": timezone.now()},
    )

    index = page(admin_client, "/admin/")

    assert "Peer bravo.hub: 1 refused item." in index
    assert "Peer charlie.hub: pulls failing since" in index
    assert "delta.hub" not in index


def test_the_peer_list_and_status_show_pull_health_in_flight_and_recovery(
    acme_submitter, admin_client
):
    bravo = make_peer("bravo.hub")
    for _ in range(3):
        vetted_entry(acme_submitter)
    now = timezone.now()
    claimed = OutboxItem.objects.filter(peer=bravo).order_by("pk")[:2]
    OutboxItem.objects.filter(pk__in=[r.pk for r in claimed]).update(
        claimed_until=now + timedelta(minutes=5), attempts=1
    )
    PeerLink.objects.update_or_create(
        peer=bravo,
        defaults={
            "last_push_error": "HTTP 503",
            "last_push_error_at": now - timedelta(minutes=10),
            "last_push_at": now - timedelta(minutes=2),
            # A pull failed, then one succeeded (which clears the pull error's text).
            "last_pull_error": "",
            "last_pull_error_at": now - timedelta(minutes=8),
            "last_pull_at": now - timedelta(minutes=1),
            # Bravo's own pulls of our feed.
            "peer_pulled_through": 41,
            "peer_pulled_at": now - timedelta(minutes=3),
        },
    )

    out = io.StringIO()
    call_command("peer", "status", stdout=out)
    text = out.getvalue()
    assert "in flight 2" in text and "depth 3" in text
    assert "last error at" in text and "(recovered at" in text and "HTTP 503" in text
    pull_line = next(line for line in text.splitlines() if line.strip().startswith("pull"))
    assert "last pull " in pull_line and "recovered at" in pull_line
    assert "our feed pulled by it through position 41, last at " in text

    out = io.StringIO()
    call_command("peer", "status", "--json", stdout=out)
    assert '"in_flight": 2' in out.getvalue() and '"pull_recovered_at": "' in out.getvalue()

    listed = page(admin_client, "/admin/members/peer/")
    assert "3 (2 in flight)" in listed
    assert "recovered at" in listed and "last pull" in listed and "it pulled to 41," in listed


def _pulled_by(peer, contribution) -> None:
    event = AuditEvent.objects.create(
        action=Action.FEDERATION_SENT, actor_type="peer", actor_id=peer.hub_id,
        object_type=ObjectType.PEER, object_id=peer.hub_id,
        data={"peer": peer.hub_id, "via": "pull", "items": ["c" * 64]},
    )  # fmt: skip
    PulledItem.objects.create(
        peer=peer, kind="contribution", entry=contribution.entry, contribution=contribution,
        event=event, digest="c" * 64,
    )  # fmt: skip


def test_the_entry_page_costs_the_same_queries_however_many_peers_pulled_it(
    acme_submitter, admin_client
):
    entry = vetted_entry(acme_submitter)
    add = Contribution.objects.get(entry=entry)
    url = f"/admin/federation/entry/{entry.pk}/change/"
    _pulled_by(make_peer("bravo.hub"), add)
    page(admin_client, url)  # warm (sessions, content types)
    with CaptureQueriesContext(connection) as one:
        html = page(admin_client, url)
    assert "<td>bravo.hub</td>" in html[html.index("Pulled by peers") :]

    for name in ("charlie", "delta", "echo"):
        _pulled_by(make_peer(f"{name}.hub"), add)
    with CaptureQueriesContext(connection) as four:
        html = page(admin_client, url)
    assert "<td>echo.hub</td>" in html[html.index("Pulled by peers") :]
    assert len(four) == len(one)
