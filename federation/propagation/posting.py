"""POSTing a signed batch to a peer and reading its answer (docs/federation.md, "Delivery"): the
part of a round that runs on a thread of its own, without the database."""

import http.client
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from members.models import Peer

BATCHES_PATH = "/api/v1/federation/batches"
# A receiver that takes attestations under a root (docs/federation.md, "Attestations under one
# root") says so with this header, "1", on its answers to a push.
ROOTS_HEADER = "Concordat-Attestation-Roots"


class DeliveryFailed(Exception):
    """The batch did not get an answer to apply (transport error, error status, bad answer)."""


class PeerAnswer(NamedTuple):
    """The peer's per-item results by index, and whether it takes attestations under a root."""

    results: dict[int, dict]
    takes_roots: bool


def said_roots(peer: Peer) -> bool:
    """Whether the peer's last answer to a push said it takes attestations under a root
    (``PeerLink.takes_attestation_roots``; no link before the first push)."""
    link = getattr(peer, "link", None)
    return bool(link and link.takes_attestation_roots)


def takes_roots(peer: Peer) -> bool:
    """Whether a push to ``peer`` puts this hub's attestations under roots: the peer said it
    takes them, and this hub is not told not to (``FEDERATION_ATTESTATION_ROOTS``)."""
    return settings.FEDERATION_ATTESTATION_ROOTS and said_roots(peer)


def batch_outcome(peer: Peer, body: bytes) -> PeerAnswer | DeliveryFailed:
    """The peer's answers to one batch, or why there are none (runs on a thread: no database)."""
    try:
        return batch_post(peer, body)
    except DeliveryFailed as exc:
        return exc


def batch_post(peer: Peer, body: bytes) -> PeerAnswer:
    """POST the batch; the per-item results by index."""
    parts = urlsplit(peer.url)
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = factory(parts.hostname, parts.port, timeout=settings.FEDERATION_CONNECT_TIMEOUT_SECONDS)
    try:
        conn.connect()
        conn.sock.settimeout(settings.FEDERATION_READ_TIMEOUT_SECONDS)
        conn.request(
            "POST",
            parts.path.rstrip("/") + BATCHES_PATH,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {peer.outbound_token}",
            },
        )
        response = conn.getresponse()
        status, raw = response.status, response.read(settings.FEDERATION_MAX_BODY_BYTES)
        roots = response.getheader(ROOTS_HEADER) == "1"
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            raise DeliveryFailed(f"HTTP {status} {error.get('code')}: {error.get('message')}")
        raise DeliveryFailed(f"HTTP {status}")
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise DeliveryFailed("the peer's answer has no results")
    return PeerAnswer(
        {r["index"]: r for r in results if isinstance(r, dict) and isinstance(r.get("index"), int)},
        roots,
    )
