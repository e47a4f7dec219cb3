"""POSTing a signed batch to a peer and reading its answer (docs/federation.md, "Delivery"): the
part of a round that runs on a thread of its own, without the database."""

import http.client
from urllib.parse import urlsplit

import orjson
from django.conf import settings

from members.models import Peer

BATCHES_PATH = "/api/v1/federation/batches"


class DeliveryFailed(Exception):
    """The batch did not get an answer to apply (transport error, error status, bad answer)."""


def batch_outcome(peer: Peer, body: bytes) -> dict[int, dict] | DeliveryFailed:
    """The peer's answers to one batch, or why there are none (runs on a thread: no database)."""
    try:
        return batch_post(peer, body)
    except DeliveryFailed as exc:
        return exc


def batch_post(peer: Peer, body: bytes) -> dict[int, dict]:
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
    return {
        r["index"]: r for r in results if isinstance(r, dict) and isinstance(r.get("index"), int)
    }
