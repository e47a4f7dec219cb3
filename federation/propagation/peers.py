"""Peer hubs: registering them, changing their state and policies, rotating their pinned key and
the credentials both ways (docs/federation.md, "For consortium admins"). The inbound credential is issued by
``federation.propagation.authentication.peer_inbound_credential_issue``.

Each service runs in one transaction and writes its ``peer.*`` audit event in it; the
``manage.py peer`` command and the Django admin both call these, so they leave the same trail.
"""

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from nacl.bindings import crypto_core_ed25519_is_valid_point

from federation.contributions.models import ContributionScope, SignalType
from federation.errors import Conflict, InvalidInput
from federation.propagation.authentication import PEER_TOKEN_PREFIX, peer_inbound_credential_issue
from federation.propagation.models import PeerLink
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.models import Peer, key_id_for
from members.validators import check_display_name

# Scopes a peer may be sent: ``hub`` never leaves this hub.
OUTBOUND_SCOPES = (ContributionScope.PEERS.value, ContributionScope.FEDERATION.value)

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,199}")  # as in the wire format
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
# The fields ``peer_update`` may change, in the order events list them.
UPDATABLE = ("state", "url", "inbound_policy", "outbound_scopes", "outbound_labels",
             "outbound_signal_types")  # fmt: skip


@dataclass(frozen=True)
class RegisteredPeer:
    peer: Peer
    inbound_token: str | None  # shown once; none for a peer known by its key only


# --- Checks ------------------------------------------------------------------------------------


def check_hub_id(hub_id: str) -> str:
    if not isinstance(hub_id, str) or not _HUB_ID.fullmatch(hub_id):
        raise InvalidInput(
            "A hub id is 1 to 200 letters, digits and . : _ - (starting with a letter or digit).",
            details={"field": "hub_id"},
        )
    if hub_id == settings.HUB_ID:
        raise InvalidInput("This is this hub's own id.", details={"field": "hub_id"})
    return hub_id


def check_url(url: str) -> str:
    """A peer's base URL: http(s), a host, no credentials, no query or fragment; blank allowed."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "The URL must be http:// or https:// with a host.", details={"field": "url"}
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "The URL must not carry credentials; set the outbound token instead.",
            details={"field": "url"},
        )
    if parts.query or parts.fragment:
        raise InvalidInput("The URL must have no query or fragment.", details={"field": "url"})
    try:
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise InvalidInput("The URL's port is not a number.", details={"field": "url"}) from None
    if len(url) > Peer._meta.get_field("url").max_length:
        raise InvalidInput("The URL is too long.", details={"field": "url"})
    return url.rstrip("/")


def decode_public_key(value: str | bytes) -> bytes:
    """The peer's hub key: 32 bytes (given raw or in base64) that are a valid Ed25519 point."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "The public key must be base64.", details={"field": "public_key"}
            ) from None
    else:
        raw = bytes(value)
    if len(raw) != 32:
        raise InvalidInput(
            "The public key must be the raw 32-byte Ed25519 key.", details={"field": "public_key"}
        )
    if not crypto_core_ed25519_is_valid_point(raw):
        raise InvalidInput(
            "These 32 bytes are not a valid Ed25519 public key.", details={"field": "public_key"}
        )
    return raw


def check_policies(
    *,
    inbound_policy: str | None = None,
    scopes: list[str] | None = None,
    labels: list[str] | None = None,
    signal_types: list[str] | None = None,
) -> dict:
    """The given policy fields, checked and normalised (sorted, de-duplicated)."""
    checked: dict = {}
    if inbound_policy is not None:
        if inbound_policy not in Peer.InboundPolicy.values:
            raise InvalidInput(
                f"inbound_policy must be one of {Peer.InboundPolicy.values}.",
                details={"field": "inbound_policy"},
            )
        checked["inbound_policy"] = inbound_policy
    if scopes is not None:
        if set(scopes) - set(OUTBOUND_SCOPES):
            raise InvalidInput(
                f"Outbound scopes are a subset of {list(OUTBOUND_SCOPES)} (hub never leaves).",
                details={"field": "outbound_scopes"},
            )
        checked["outbound_scopes"] = sorted(set(scopes))
    if labels is not None:
        if not all(isinstance(s, str) and _SLUG.fullmatch(s) for s in labels):
            raise InvalidInput("Labels are slugs.", details={"field": "outbound_labels"})
        checked["outbound_labels"] = sorted(set(labels))
    if signal_types is not None:
        if set(signal_types) - set(SignalType.values):
            raise InvalidInput(
                f"Signal types are a subset of {SignalType.values}.",
                details={"field": "outbound_signal_types"},
            )
        checked["outbound_signal_types"] = sorted(set(signal_types))
    return checked


def _outbound(peer: Peer) -> dict:
    return {
        "scopes": list(peer.outbound_scopes),
        "labels": list(peer.outbound_labels),
        "signal_types": list(peer.outbound_signal_types),
    }


def _record(action: str, peer: Peer, actor: Actor, data: dict) -> None:
    audit_record(
        AuditRecord(
            action=action,
            actor=actor,
            organisation=actor.organisation_slug,
            object_type=ObjectType.PEER,
            object_id=peer.hub_id,
            data=data,
        )
    )


# --- Services ----------------------------------------------------------------------------------


def peer_register(
    *,
    hub_id: str,
    name: str,
    public_key: str | bytes,
    actor: Actor,
    url: str = "",
    inbound_policy: str = Peer.InboundPolicy.REVIEW,
    outbound_scopes: list[str] | None = None,
    outbound_labels: list[str] | None = None,
    outbound_signal_types: list[str] | None = None,
) -> RegisteredPeer:
    """Register a peer hub. A peer with a URL is a link: it gets a delivery record and an inbound
    credential (the token it presents here, returned once); without one it is known by its key
    only (an origin whose signatures reach this hub through other peers)."""
    check_hub_id(hub_id)
    check_display_name(name, field="name")
    if not (name or "").strip():
        raise InvalidInput("Give the peer a name.", details={"field": "name"})
    url = check_url(url)
    raw_key = decode_public_key(public_key)
    policies = check_policies(
        inbound_policy=inbound_policy,
        scopes=outbound_scopes or [],
        labels=outbound_labels or [],
        signal_types=outbound_signal_types or [],
    )
    exists = Conflict("A peer with this hub id is already registered.", code="peer_exists")
    with transaction.atomic():
        if Peer.objects.filter(hub_id=hub_id).exists():
            raise exists
        try:
            with transaction.atomic():
                peer = Peer.objects.create(
                    hub_id=hub_id, name=name.strip(), url=url, public_key=raw_key, **policies
                )
        except IntegrityError:
            raise exists from None
        _record(
            Action.PEER_REGISTERED,
            peer,
            actor,
            {
                Key.HUB_ID: peer.hub_id,
                Key.NAME: peer.name,
                Key.URL: peer.url,
                Key.KEY_ID: peer.key_id,
                Key.STATE: peer.state,
                Key.INBOUND_POLICY: peer.inbound_policy,
                Key.OUTBOUND: _outbound(peer),
            },
        )
        token = None
        if peer.is_link:
            PeerLink.objects.get_or_create(peer=peer)
            token = peer_inbound_credential_issue(peer=peer, actor=actor)
    return RegisteredPeer(peer=peer, inbound_token=token)


def peer_update(
    *,
    peer: Peer,
    actor: Actor,
    state: str | None = None,
    url: str | None = None,
    inbound_policy: str | None = None,
    outbound_scopes: list[str] | None = None,
    outbound_labels: list[str] | None = None,
    outbound_signal_types: list[str] | None = None,
) -> Peer:
    """Change a peer's state, URL or policies (``None``: unchanged). One ``peer.changed`` event
    names the changed fields only, before and after; nothing changed writes nothing."""
    wanted = check_policies(
        inbound_policy=inbound_policy,
        scopes=outbound_scopes,
        labels=outbound_labels,
        signal_types=outbound_signal_types,
    )
    if state is not None:
        if state not in Peer.State.values:
            raise InvalidInput(
                f"state must be one of {Peer.State.values}.", details={"field": "state"}
            )
        wanted["state"] = state
    if url is not None:
        wanted["url"] = check_url(url)
    with transaction.atomic():
        peer = Peer.objects.select_for_update().get(pk=peer.pk)
        before = {name: getattr(peer, name) for name in UPDATABLE}
        changed = {name: value for name, value in wanted.items() if before[name] != value}
        if not changed:
            return peer
        for name, value in changed.items():
            setattr(peer, name, value)
        peer.updated_at = timezone.now()
        peer.save(update_fields=[*changed, "updated_at"])
        ordered = [name for name in UPDATABLE if name in changed]
        _record(
            Action.PEER_CHANGED,
            peer,
            actor,
            {
                Key.FROM: {name: before[name] for name in ordered},
                Key.TO: {name: changed[name] for name in ordered},
            },
        )
        if peer.is_link:
            PeerLink.objects.get_or_create(peer=peer)
    if peer.is_link and peer.is_active and changed.keys() & {"state", "url"}:
        from federation.propagation.delivery import request_drain_all

        transaction.on_commit(lambda: request_drain_all(peer_ids=[peer.pk]))
    return peer


def peer_rotate_key(*, peer: Peer, public_key: str | bytes, reason: str, actor: Actor) -> Peer:
    """Pin a new hub key for the peer (it rotated its key). An admin action only, with a reason."""
    if not (reason or "").strip():
        raise InvalidInput("Give a reason for rotating the key.", code="reason_required")
    raw_key = decode_public_key(public_key)
    with transaction.atomic():
        peer = Peer.objects.select_for_update().get(pk=peer.pk)
        old = peer.key_id
        if peer.public_key_bytes == raw_key:
            raise Conflict("This key is already the peer's pinned key.", code="same_key")
        peer.public_key = raw_key
        peer.updated_at = timezone.now()
        peer.save(update_fields=["public_key", "updated_at"])
        _record(
            Action.PEER_KEY_ROTATED,
            peer,
            actor,
            {Key.FROM: old, Key.TO: key_id_for(raw_key), Key.REASON: reason.strip()},
        )
    return peer


def peer_set_outbound_token(*, peer: Peer, token: str, actor: Actor) -> Peer:
    """The token this hub presents to the peer (issued by the peer's admins, ``cp_…``)."""
    token = (token or "").strip()
    prefix, sep, secret = token[len(PEER_TOKEN_PREFIX) :].partition("_")
    if not token.startswith(PEER_TOKEN_PREFIX) or not (prefix and sep and secret):
        raise InvalidInput(
            "A peer token looks like cp_<prefix>_<secret>.", details={"field": "token"}
        )
    if len(token) > Peer._meta.get_field("outbound_token").max_length or not token.isascii():
        raise InvalidInput("This is not a peer token.", details={"field": "token"})
    with transaction.atomic():
        peer = Peer.objects.select_for_update().get(pk=peer.pk)
        peer.outbound_token = token
        peer.updated_at = timezone.now()
        peer.save(update_fields=["outbound_token", "updated_at"])
        _record(
            Action.PEER_CREDENTIAL_ISSUED,
            peer,
            actor,
            {Key.DIRECTION: "outbound", Key.PREFIX: prefix},
        )
    if peer.is_link and peer.is_active:
        from federation.propagation.delivery import request_drain_all

        transaction.on_commit(lambda: request_drain_all(peer_ids=[peer.pk]))
    return peer
