"""Receiving, phase 1: the envelope of a batch from a peer (docs/federation.md, "Receiving").

The whole batch is refused (``BatchRefused``, audited ``federation.batch_refused`` by
``batch_refused_record``) unless the peer is active, the body is a well-formed batch of at most
``wire.MAX_BATCH_ITEMS`` items, ``from`` is the authenticated peer, ``to`` is this hub, the batch
signature verifies under the peer's pinned key, and ``feed`` (if any) is well-formed and, for a
pull, continues from the cursor asked for. Touches no table but the peers.
"""

import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import transaction

from federation.errors import ConcordatError
from federation.propagation import wire
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.models import Peer

_EVIDENCE_TEXT = 200


class BatchRefused(ConcordatError):
    """The whole batch is refused (nothing in it is applied); audited ``federation.batch_refused``."""

    def __init__(self, message: str, *, code: str, status: int, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


def batch_refused_record(
    *,
    actor: Actor,
    claimed_hub: str,
    batch_id: str | None,
    code: str,
    message: str,
    request_evidence: Mapping[str, Any] | None,
) -> None:
    """The one ``federation.batch_refused`` event of a batch refused as a whole (also written by
    the push endpoint for a refused credential, when no peer is authenticated)."""
    with transaction.atomic():
        audit_record(
            AuditRecord(
                action=Action.FEDERATION_BATCH_REFUSED,
                actor=actor,
                organisation="",
                object_type=ObjectType.PEER,
                object_id=claimed_hub[:_EVIDENCE_TEXT],
                data={
                    Key.PEER: claimed_hub[:_EVIDENCE_TEXT],
                    Key.BATCH: batch_id,
                    Key.CODE: code,
                    Key.MESSAGE: message[:300],
                    Key.REQUEST: dict(request_evidence) if request_evidence else None,
                },
            )
        )


def claimed_sender(body: object) -> str:
    """``batch.from`` of a body if it reads as a hub id (evidence for a refused request), or ``""``."""
    document = body.get("batch") if isinstance(body, dict) else None
    sender = document.get("from") if isinstance(document, dict) else None
    if isinstance(sender, str) and wire.HUB_ID.fullmatch(sender):
        return sender
    return ""


def readable_batch_id(body: object) -> str | None:
    document = body.get("batch") if isinstance(body, dict) else None
    raw = document.get("id") if isinstance(document, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid_module.UUID(raw)) if len(raw) == 36 else None
    except ValueError:
        return None


def check_envelope(peer: Peer, body: object, feed_after: int | None) -> wire.ParsedBatch:
    """The parsed batch, if its envelope passes every check above; ``BatchRefused`` otherwise."""
    if not peer.is_active:
        raise BatchRefused(
            "This peer is suspended on this hub; nothing it sends is accepted.",
            code="peer_suspended",
            status=403,
        )
    document = body.get("batch") if isinstance(body, dict) else None
    items = document.get("items") if isinstance(document, dict) else None
    if isinstance(items, list) and len(items) > wire.MAX_BATCH_ITEMS:
        raise BatchRefused(
            f"At most {wire.MAX_BATCH_ITEMS} items per batch.",
            code="too_many_items",
            status=400,
            details={"limit": wire.MAX_BATCH_ITEMS, "received": len(items)},
        )
    try:
        parsed = wire.parse_batch(body)
    except wire.MalformedWireObject as exc:
        raise BatchRefused(
            f"{exc.field}: {exc.message}", code="invalid", status=400, details={"field": exc.field}
        ) from None
    if parsed.sender != peer.hub_id:
        raise BatchRefused(
            f"batch.from must be your hub id {peer.hub_id!r}.", code="wrong_sender", status=403
        )
    if parsed.receiver != settings.HUB_ID:
        raise BatchRefused(
            f"batch.to must be this hub's id {settings.HUB_ID!r}.",
            code="wrong_receiver",
            status=400,
        )
    try:
        pinned = Ed25519PublicKey.from_public_bytes(peer.public_key_bytes)
    except ValueError:
        pinned = None
    if pinned is None or not parsed.envelope.verify(pinned):
        raise BatchRefused(
            "The batch signature does not verify under your pinned hub key.",
            code="bad_batch_signature",
            status=403,
        )
    feed = parsed.feed
    if feed is not None and (
        feed.keys() != {"after", "next", "more"}
        or type(feed["after"]) is not int
        or type(feed["next"]) is not int
        or type(feed["more"]) is not bool
        or not 0 <= feed["after"] <= feed["next"] <= 2**63 - 1
    ):
        raise BatchRefused(
            "batch.feed must be {after, next, more}: integers 0 <= after <= next, a boolean.",
            code="invalid",
            status=400,
            details={"field": "batch.feed"},
        )
    if feed_after is not None and (feed is None or feed["after"] != feed_after):
        raise BatchRefused(
            f"The feed page does not continue from the cursor asked for ({feed_after}).",
            code="feed_mismatch",
            status=400,
        )
    return parsed


def known_hubs(parsed: wire.ParsedBatch, sender: Peer) -> dict[str, Peer]:
    """The peers named by the items' paths and key bindings, by hub id. A batch that names no
    hub but its sender (items from the sender's own members, a path of one hub: a direct push)
    needs no query: ``sender`` is the peer row this request authenticated and checked the
    envelope against."""
    names: set[str] = set()
    for item in parsed.items:
        names.update(item.path)
        if item.binding is not None:
            names.add(item.binding.document["hub"])
    if names <= {sender.hub_id}:
        return {sender.hub_id: sender} if names else {}
    return {peer.hub_id: peer for peer in Peer.objects.filter(hub_id__in=names)}
