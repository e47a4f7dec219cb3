"""The pull client against a tiny feed server on 127.0.0.1 that serves signed pages built here
(the real feed endpoint and hubs are exercised by the integration tests)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from federation.contributions.models import Contribution
from federation.propagation.models import PeerLink, Receipt
from federation.receiving.pull import _horizon, federation_pull_all, pull_from_peer
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from members.models import Peer
from tests.support.federation import RemoteHub, contribution_item

pytestmark = pytest.mark.django_db

OUTBOUND = "cp_feedfeedfeed_theoutboundsecret"
HORIZON = "Concordat-Feed-Horizon"
STALE = {"error": {"code": "stale_cursor", "message": "compacted", "details": None}}


class FeedServer:
    """Serves ``pages[after]`` (a status and a JSON body) and records what it was asked.

    With ``compacted_through`` set, it answers as a feed whose compaction dropped a removal
    there (docs/federation.md, "The pull feed"): 410 ``stale_cursor`` to an ``after`` > 0 below
    it and below the ``horizon`` asked with, and a ``Concordat-Feed-Horizon`` header on each page
    (``compacted_through`` from 0, else the horizon asked with). Without it, no header: a peer
    running a version without horizons."""

    def __init__(self) -> None:
        self.pages: dict[int, tuple[int, object]] = {}
        self.requests: list[dict] = []
        self.compacted_through: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                after = int(query["after"][0])
                horizon = query.get("horizon", [None])[0]
                server.requests.append(
                    {
                        "path": url.path,
                        "after": after,
                        "horizon": horizon,
                        "limit": query.get("limit", [""])[0],
                        "authorization": self.headers.get("Authorization"),
                        "roots": self.headers.get("Concordat-Attestation-Roots"),
                    }
                )
                status, body = server.pages.get(
                    after,
                    (404, {"error": {"code": "not_found", "message": "", "details": None}}),
                )
                compacted, headers = server.compacted_through, {}
                if compacted is not None:
                    horizon = compacted if after == 0 else int(horizon or 0)
                    if after > 0 and compacted > max(after, horizon):
                        status, body = 410, STALE
                    headers[HORIZON] = str(horizon)
                if status != 200:
                    headers = {}
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed():
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def bravo(feed):
    hub = RemoteHub("bravo.example")
    Peer.objects.filter(pk=hub.peer.pk).update(url=feed.url, outbound_token=OUTBOUND)
    hub.peer.refresh_from_db()
    return hub


def _page(hub, items, *, after, next, more):
    return 200, hub.batch(items, feed={"after": after, "next": next, "more": more})


def _link(hub) -> PeerLink:
    return PeerLink.objects.get(peer=hub.peer)


def test_pull_follows_more_and_advances_the_cursor_after_each_page(bravo, feed):
    member = bravo.member()
    first, second = contribution_item(member), contribution_item(member)
    feed.pages[0] = _page(bravo, [first], after=0, next=7, more=True)
    feed.pages[7] = _page(bravo, [second], after=7, next=9, more=False)
    outcome = pull_from_peer(bravo.peer.pk)
    assert (outcome.pages, outcome.accepted, outcome.error) == (2, 2, "")
    assert [r["after"] for r in feed.requests] == [0, 7]
    assert {r["authorization"] for r in feed.requests} == {f"Bearer {OUTBOUND}"}
    assert {r["path"] for r in feed.requests} == {"/api/v1/federation/feed"}
    assert {r["horizon"] for r in feed.requests} == {None}  # a peer that gives no horizon
    link = _link(bravo)
    assert link.pull_cursor == 9 and link.last_pull_at is not None and link.last_pull_error == ""
    assert link.pull_horizon == 0
    assert set(Receipt.objects.values_list("via", flat=True)) == {"pull"}
    received = AuditEvent.objects.filter(action=Action.FEDERATION_RECEIVED)
    assert [e.data["via"] for e in received] == ["pull", "pull"]


def test_pulling_again_is_idempotent(bravo, feed):
    item = contribution_item(bravo.member())
    feed.pages[0] = _page(bravo, [item], after=0, next=3, more=False)
    feed.pages[3] = _page(bravo, [], after=3, next=3, more=False)
    pull_from_peer(bravo.peer.pk)
    PeerLink.objects.filter(peer=bravo.peer).update(pull_cursor=0)  # as if the update was lost
    outcome = pull_from_peer(bravo.peer.pk)
    assert (outcome.accepted, outcome.duplicates) == (0, 1)
    assert Contribution.objects.count() == 1 and Receipt.objects.count() == 1


def test_a_page_not_continuing_from_the_cursor_is_refused_and_the_cursor_stays(bravo, feed):
    feed.pages[0] = _page(bravo, [contribution_item(bravo.member())], after=5, next=9, more=False)
    outcome = pull_from_peer(bravo.peer.pk)
    assert "feed_mismatch" in outcome.error
    link = _link(bravo)
    assert link.pull_cursor == 0 and "feed_mismatch" in link.last_pull_error
    assert link.last_pull_error_at is not None
    assert not Contribution.objects.exists()
    refused = AuditEvent.objects.get(action=Action.FEDERATION_BATCH_REFUSED)
    assert refused.data["code"] == "feed_mismatch"


def test_a_page_addressed_to_another_hub_is_refused(bravo, feed):
    feed.pages[0] = (
        200,
        bravo.batch([], to="other.example", feed={"after": 0, "next": 1, "more": False}),
    )
    assert "wrong_receiver" in pull_from_peer(bravo.peer.pk).error
    assert _link(bravo).pull_cursor == 0


def test_a_page_without_feed_fields_is_refused(bravo, feed):
    feed.pages[0] = 200, bravo.batch([])
    assert "feed_mismatch" in pull_from_peer(bravo.peer.pk).error


def test_a_stale_cursor_restarts_from_zero(bravo, feed):
    PeerLink.objects.filter(peer=bravo.peer).update(pull_cursor=40)
    stale = {"error": {"code": "stale_cursor", "message": "compacted", "details": None}}
    feed.pages[40] = (410, stale)
    feed.pages[0] = _page(bravo, [contribution_item(bravo.member())], after=0, next=50, more=False)
    outcome = pull_from_peer(bravo.peer.pk)
    assert outcome.restarted and outcome.accepted == 1
    assert [r["after"] for r in feed.requests] == [40, 0]
    assert _link(bravo).pull_cursor == 50


def test_a_pull_from_the_start_sends_back_the_feeds_horizon_and_reads_every_page(bravo, feed):
    """The peer's compaction dropped a removal at 10, above the first pages: a puller that
    began after it is not refused (it was refused on page 2, and read page 1 forever)."""
    feed.compacted_through = 10
    member = bravo.member()
    items = [contribution_item(member) for _ in range(3)]
    feed.pages[0] = _page(bravo, items[:1], after=0, next=3, more=True)
    feed.pages[3] = _page(bravo, items[1:2], after=3, next=6, more=True)
    feed.pages[6] = _page(bravo, items[2:], after=6, next=12, more=False)

    outcome = pull_from_peer(bravo.peer.pk)

    assert (outcome.pages, outcome.accepted, outcome.restarted, outcome.error) == (3, 3, False, "")
    assert [(r["after"], r["horizon"]) for r in feed.requests] == [(0, None), (3, "10"), (6, "10")]
    link = _link(bravo)
    assert (link.pull_cursor, link.pull_horizon) == (12, 10)
    feed.pages[12] = _page(bravo, [], after=12, next=12, more=False)
    pull_from_peer(bravo.peer.pk)
    assert feed.requests[-1]["horizon"] is None  # past the horizon: a plain cursor


def test_a_compaction_after_the_pull_began_above_its_horizon_restarts_it_from_zero(
    bravo, feed, settings
):
    feed.compacted_through = 10
    member = bravo.member()
    feed.pages[0] = _page(bravo, [contribution_item(member)], after=0, next=3, more=True)
    feed.pages[3] = _page(bravo, [contribution_item(member)], after=3, next=6, more=True)
    feed.pages[6] = _page(bravo, [contribution_item(member)], after=6, next=12, more=False)
    settings.FEDERATION_PULL_MAX_PAGES = 1
    pull_from_peer(bravo.peer.pk)
    assert (_link(bravo).pull_cursor, _link(bravo).pull_horizon) == (3, 10)
    feed.compacted_through = 11  # a later compaction dropped a removal the puller may need
    settings.FEDERATION_PULL_MAX_PAGES = 20

    outcome = pull_from_peer(bravo.peer.pk)

    assert outcome.restarted and outcome.error == ""
    assert [(r["after"], r["horizon"]) for r in feed.requests[1:]] == [
        (3, "10"),  # 410 stale_cursor
        (0, None),
        (3, "11"),
        (6, "11"),
    ]
    assert (outcome.pages, outcome.accepted, outcome.duplicates) == (3, 2, 1)
    assert (_link(bravo).pull_cursor, _link(bravo).pull_horizon) == (12, 11)


@pytest.mark.parametrize(
    ("header", "horizon"),
    [("12", 12), ("0", 0), ("-1", 0), ("x", 0), ("", 0), ("\uff11\uff12", 0), (str(2**53), 0)],
)
def test_a_horizon_header_that_is_not_a_cursor_counts_as_none(header, horizon):
    assert _horizon(header) == horizon


def test_errors_are_recorded_on_the_link(bravo, feed):
    feed.pages[0] = (
        401,
        {"error": {"code": "authentication_failed", "message": "", "details": None}},
    )
    outcome = pull_from_peer(bravo.peer.pk)
    assert outcome.error == "HTTP 401 authentication_failed from /api/v1/federation/feed"
    assert _link(bravo).last_pull_error == outcome.error
    feed.pages[0] = (200, b"not json")
    assert "not JSON" in pull_from_peer(bravo.peer.pk).error


def test_an_unreachable_peer_is_recorded(bravo, feed):
    feed.close()
    outcome = pull_from_peer(bravo.peer.pk)
    assert outcome.error.startswith("cannot reach")
    assert _link(bravo).last_pull_error.startswith("cannot reach")
    feed.httpd = type("Closed", (), {"shutdown": lambda s: None, "server_close": lambda s: None})()


def test_pulls_are_bounded_per_run(bravo, feed, settings):
    settings.FEDERATION_PULL_MAX_PAGES = 2
    for n in range(5):
        feed.pages[n] = _page(bravo, [], after=n, next=n + 1, more=True)
    assert pull_from_peer(bravo.peer.pk).pages == 2
    assert _link(bravo).pull_cursor == 2


def test_suspended_unlinked_or_tokenless_peers_are_not_pulled(bravo, feed):
    Peer.objects.filter(pk=bravo.peer.pk).update(state=Peer.State.SUSPENDED)
    assert pull_from_peer(bravo.peer.pk).pages == 0
    Peer.objects.filter(pk=bravo.peer.pk).update(state=Peer.State.ACTIVE, outbound_token="")
    assert pull_from_peer(bravo.peer.pk).error == "no outbound token"
    assert feed.requests == []


def test_the_beat_task_fans_out_over_active_linked_peers(bravo, feed, settings):
    from settings.celery import app

    RemoteHub("known-only.example", link=False)
    suspended = RemoteHub("suspended.example")
    Peer.objects.filter(pk=suspended.peer.pk).update(
        state=Peer.State.SUSPENDED, url=feed.url, outbound_token="cp_x_y"
    )
    feed.pages[0] = _page(bravo, [contribution_item(bravo.member())], after=0, next=1, more=False)
    assert settings.CELERY_BEAT_SCHEDULE["federation-pull"]["task"] == (
        "federation.propagation.pull.federation_pull_all"
    )
    app.conf.task_always_eager = True  # the real tasks, run in this process
    try:
        assert federation_pull_all() == 1
    finally:
        app.conf.task_always_eager = False
    assert [r["authorization"] for r in feed.requests] == [f"Bearer {OUTBOUND}"]
    assert _link(bravo).pull_cursor == 1


def test_a_failed_pull_is_logged_at_warning_with_the_peer_and_the_items_received(
    bravo, feed, caplog
):
    member = bravo.member()
    feed.pages[0] = _page(bravo, [contribution_item(member)], after=0, next=7, more=True)
    feed.pages[7] = (503, {"error": {"code": "unavailable", "message": "", "details": None}})

    with caplog.at_level("WARNING", logger="federation.receiving.pull"):
        pull_from_peer(bravo.peer.pk)

    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "pull from bravo.example failed after 1 pages (1 items received): "
        "HTTP 503 unavailable from /api/v1/federation/feed"
    ]


def test_a_pull_asks_for_attestations_under_roots_and_checks_them(bravo, feed, settings):
    """The puller says it reads roots (docs/federation.md, "The pull feed"); a page whose items'
    attestations are under one root is checked and stored as a push's would be, the receipts
    keeping the pairs as they came. With FEDERATION_ATTESTATION_ROOTS off it does not ask."""
    member = bravo.member()
    items = [contribution_item(member) for _ in range(3)]
    pairs = bravo.under_root([item["attestations"][0] for item in items])
    for item, pair in zip(items, pairs, strict=True):
        item["attestations"] = [pair]
    feed.pages[0] = _page(bravo, items, after=0, next=4, more=False)
    outcome = pull_from_peer(bravo.peer.pk)
    assert (outcome.pages, outcome.accepted, outcome.error) == (1, 3, "")
    assert [r["roots"] for r in feed.requests] == ["1"]
    kept = sorted(
        Receipt.objects.values_list("attestations", flat=True), key=lambda a: a[0]["index"]
    )
    assert kept == [[pair] for pair in pairs]
    settings.FEDERATION_ATTESTATION_ROOTS = False
    feed.pages[4] = _page(bravo, [], after=4, next=4, more=False)
    pull_from_peer(bravo.peer.pk)
    assert [r["roots"] for r in feed.requests] == ["1", None]


def test_a_pulled_page_with_a_root_signed_by_another_key_is_not_stored(bravo, feed):
    member = bravo.member()
    items = [contribution_item(member) for _ in range(2)]
    pairs = bravo.under_root(
        [item["attestations"][0] for item in items], signer=RemoteHub("mallory.example").private_key
    )
    for item, pair in zip(items, pairs, strict=True):
        item["attestations"] = [pair]
    feed.pages[0] = _page(bravo, items, after=0, next=4, more=False)
    outcome = pull_from_peer(bravo.peer.pk)
    assert outcome.accepted == 0 and Contribution.objects.count() == 0
    assert outcome.rejected == 2
