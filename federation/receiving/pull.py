"""Pulling from a peer (anti-entropy): its signed feed, through exactly the checks of a push.

``pull_from_peer(peer_id)`` asks ``<peer.url>/api/v1/federation/feed?after=<cursor>`` (with
``&horizon=<horizon>`` while the horizon held is above the cursor) with this hub's outbound token,
hands each page to ``batch_receive(via="pull")`` (which also checks that the page is addressed to
this hub and continues from the cursor asked for), and advances ``PeerLink.pull_cursor`` to the
page's ``feed.next`` only once the page is committed. It loops
while the feed says ``more``, at most ``FEDERATION_PULL_MAX_PAGES`` pages per run. A crash
between commit and cursor update only makes the next run fetch the page again, which is
idempotent (receipts). The page's ``Concordat-Feed-Horizon`` header (the peer's compaction horizon
when this reading began from 0) is kept with the cursor (``PeerLink.pull_horizon``) and sent
back, so that removals the peer had dropped before we began do not make our cursor stale; a peer
that sends no such header gives 0 (no horizon, as before). A ``410 stale_cursor`` (the peer
compacted away a removal we may need) restarts from 0, without a horizon: everything is received
again and acknowledged as duplicates.

One pull per peer at a time (a PostgreSQL advisory lock); redirects are never followed (the
token must go to the peer's URL only); proxies from the environment are not used.
"""

import hashlib
import json
import logging
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from federation.db.locks import session_lock
from federation.enqueue import TaskName, enqueue
from federation.gc_pause import cycle_collection_paused
from federation.monitoring.counters import pull_failed_counted
from federation.propagation.feed import HORIZON_HEADER, MAX_CURSOR
from federation.propagation.models import PeerLink
from federation.propagation.posting import ROOTS_HEADER
from federation.receiving.envelope import BatchRefused
from federation.receiving.receive import batch_receive
from federation.transparency.actions import Key
from members.models import Peer

logger = logging.getLogger(__name__)

FEED_PATH = "/api/v1/federation/feed"
FEED_PAGE_LIMIT = 500
_ERROR_TEXT = 1000


class PullFailed(Exception):
    """A page could not be fetched or was refused; the message goes to PeerLink.last_pull_error."""


@dataclass
class PullOutcome:
    pages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    restarted: bool = False
    error: str = ""


def pull_from_peer(peer_id: int) -> PullOutcome:
    """Pull what ``peer`` has for this hub since the cursor held, page by page (see above)."""
    outcome = PullOutcome()
    peer = Peer.objects.filter(pk=peer_id).first()
    if peer is None or not peer.is_link or not peer.is_active:
        return outcome
    link, _ = PeerLink.objects.get_or_create(peer=peer)
    if not peer.outbound_token:
        _record_error(link, "no outbound token: set one with manage.py peer set-outbound-token")
        outcome.error = "no outbound token"
        pull_failed_counted(peer=peer.hub_id)
        logger.warning(
            "pull from %s failed after 0 pages (0 items received): %s", peer.hub_id, outcome.error
        )
        return outcome
    with session_lock(_pull_lock_key(peer.pk)) as locked:
        if not locked:
            return outcome  # another worker is pulling from this peer right now
        try:
            _pull_pages(peer, link, outcome)
        except PullFailed as exc:
            outcome.error = str(exc)[:_ERROR_TEXT]
            _record_error(link, outcome.error)
            pull_failed_counted(peer=peer.hub_id)
            logger.warning(
                "pull from %s failed after %d pages (%d items received): %s",
                peer.hub_id,
                outcome.pages,
                outcome.accepted + outcome.duplicates + outcome.rejected,
                outcome.error,
            )
    return outcome


def _pull_pages(peer: Peer, link: PeerLink, outcome: PullOutcome) -> None:
    cursor, horizon = PeerLink.objects.values_list("pull_cursor", "pull_horizon").get(pk=link.pk)
    while outcome.pages < settings.FEDERATION_PULL_MAX_PAGES:
        status, raw, page_horizon = _fetch(peer, cursor, horizon)
        if status == 410 and _error_code(raw) == "stale_cursor" and cursor != 0:
            logger.info("pull from %s: cursor %d is stale, restarting from 0", peer.hub_id, cursor)
            PeerLink.objects.filter(pk=link.pk).update(pull_cursor=0, pull_horizon=0)
            cursor, horizon = 0, 0
            outcome.restarted = True
            continue
        if status != 200:
            code = _error_code(raw)
            raise PullFailed(f"HTTP {status}" + (f" {code}" if code else "") + f" from {FEED_PATH}")
        try:
            body = _json(raw)
        except ValueError as exc:
            raise PullFailed(f"the feed page is not JSON: {exc}") from None

        def evidence(raw=raw) -> dict:  # for a refused page only
            return {
                Key.PATH: FEED_PATH,
                Key.SIZE: len(raw),
                Key.SHA256: hashlib.sha256(raw).hexdigest(),
            }

        try:
            with cycle_collection_paused():
                result = batch_receive(
                    peer=peer, body=body, via="pull", evidence=evidence, feed_after=cursor
                )
        except BatchRefused as exc:
            raise PullFailed(f"page refused: {exc.code}: {exc.message}") from None
        outcome.pages += 1
        outcome.accepted += result.count("accepted")
        outcome.duplicates += result.count("duplicate")
        outcome.rejected += result.count("rejected")
        feed = result.feed
        assert feed is not None  # batch_receive refuses a pulled page without feed
        # Committed: only now does the cursor move (a lost update just fetches the page again).
        now = timezone.now()
        horizon = page_horizon
        PeerLink.objects.filter(pk=link.pk).update(
            pull_cursor=feed["next"], pull_horizon=horizon, last_pull_at=now, last_pull_error=""
        )
        if not feed["more"] or feed["next"] == cursor:
            return
        cursor = feed["next"]


def _record_error(link: PeerLink, message: str) -> None:
    PeerLink.objects.filter(pk=link.pk).update(
        last_pull_error=message[:_ERROR_TEXT], last_pull_error_at=timezone.now()
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect refused ({msg})", headers, fp)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def _fetch(peer: Peer, cursor: int, horizon: int) -> tuple[int, bytes, int]:
    """(status, body, the page's horizon) of one feed page; the body is bounded like a pushed
    batch. The horizon goes only while it is above the cursor (below, it changes nothing)."""
    if not peer.url.startswith(("https://", "http://")):
        raise PullFailed(f"the peer's URL {peer.url[:100]!r} is not http(s)")
    params = {"after": cursor, "limit": FEED_PAGE_LIMIT}
    if horizon > cursor:
        params["horizon"] = horizon
    query = urlencode(params)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked just above)
        f"{peer.url.rstrip('/')}{FEED_PATH}?{query}",
        headers={
            "Authorization": f"Bearer {peer.outbound_token}",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": f"concordat/{settings.HUB_ID}",
            # Its attestations under roots, which a page is checked for like a push's items.
            **({ROOTS_HEADER: "1"} if settings.FEDERATION_ATTESTATION_ROOTS else {}),
        },
    )
    limit = settings.FEDERATION_MAX_BODY_BYTES
    try:
        with _OPENER.open(request, timeout=settings.FEDERATION_PULL_TIMEOUT_SECONDS) as response:
            raw = _bounded(response, limit)
            return response.status, raw, _horizon(response.headers.get(HORIZON_HEADER))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, _bounded(exc, 64 * 1024), 0
        except (OSError, PullFailed):
            return exc.code, b"", 0
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PullFailed(f"cannot reach {peer.url}: {exc}") from None


def _horizon(value: str | None) -> int:
    """The page's ``Concordat-Feed-Horizon``: 0 (none) when absent (a peer that does not send
    it) or not an integer of 0 to 2^53 - 1, which the feed would refuse as ``horizon``."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 16:
        return 0
    number = int(value)
    return number if number <= MAX_CURSOR else 0


def _bounded(response, limit: int) -> bytes:
    raw = response.read(limit + 1)
    if len(raw) > limit:
        raise PullFailed(f"the feed page is over {limit} bytes")
    if (response.headers.get("Content-Encoding") or "").lower() == "gzip":
        decompressor = zlib.decompressobj(31)
        raw = decompressor.decompress(raw, limit + 1)
        if len(raw) > limit or decompressor.unconsumed_tail:
            raise PullFailed(f"the feed page is over {limit} bytes uncompressed")
    return raw


def _json(raw: bytes) -> object:
    data = orjson.loads(raw)

    def refuse_duplicates(pairs):
        result = dict(pairs)
        if len(result) != len(pairs):
            raise ValueError("a duplicate member name (RFC 8785 needs I-JSON)")
        return result

    json.loads(raw, object_pairs_hook=refuse_duplicates)
    return data


def _error_code(raw: bytes) -> str:
    try:
        error = orjson.loads(raw).get("error") or {}
        code = error.get("code")
    except (ValueError, AttributeError):
        return ""
    return code[:64] if isinstance(code, str) else ""


def _pull_lock_key(peer_pk: int) -> int:
    """The session advisory lock of one peer's pull (one pull per peer at a time): a bigint."""
    key = int.from_bytes(hashlib.sha256(f"PULL:{peer_pk}".encode()).digest()[:8], "big")
    return key - (1 << 63) if key >= 1 << 63 else key


@shared_task(name=TaskName.FEDERATION_PULL, acks_late=True, ignore_result=True)
def federation_pull(peer_id: int) -> int:
    """Pull from one peer; returns the number of items received."""
    outcome = pull_from_peer(peer_id)
    return outcome.accepted + outcome.duplicates + outcome.rejected


@shared_task(name=TaskName.FEDERATION_PULL_ALL, acks_late=True, ignore_result=True)
def federation_pull_all() -> int:
    """Beat (every FEDERATION_PULL_INTERVAL_SECONDS): one pull task per active linked peer."""
    peer_ids = list(
        Peer.objects.filter(state=Peer.State.ACTIVE)
        .exclude(url="")
        .exclude(outbound_token="")
        .values_list("pk", flat=True)
    )
    for peer_id in peer_ids:
        enqueue(TaskName.FEDERATION_PULL, peer_id)
    return len(peer_ids)
