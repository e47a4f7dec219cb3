"""How a peer hub proves who it is on the federation endpoints, and how its credential is issued.

A peer presents ``Authorization: Bearer cp_<prefix>_<secret>``: the prefix finds the ``Peer``
row (``inbound_prefix``), the secret is compared in constant time with the stored SHA-256
(``inbound_secret_hash``), as for members' API credentials (members/authentication.py). The
``cp_`` marker keeps the two kinds of token apart: a member's ``cc_`` token never opens a
federation endpoint, and a peer's token never opens a member endpoint.

- ``PeerAuthentication`` (DRF authentication): 401 ``authentication_failed`` for a missing,
  malformed, unknown or wrong token; ``request.user`` is then an ``AuthenticatedPeer`` and
  ``request.auth`` the ``Peer``.
- ``IsActivePeer`` (DRF permission): 403 ``peer_suspended`` for a suspended peer.
- ``PeerRateThrottle``: requests per peer (``settings.FEDERATION_PEER_RATE``), keyed by hub id.
- ``peer_inbound_credential_issue``: draws a new inbound credential (the old one stops working),
  audited ``peer.credential_issued``; the token is returned once and never stored.
"""

import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from federation.errors import Forbidden
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.authentication import hash_secret, split_token
from members.models import Peer

PEER_TOKEN_PREFIX = "cp_"  # noqa: S105 (a format marker, not a secret)


# Peer secrets are hashed and split exactly as API credentials are; only the marker differs.
hash_peer_secret = hash_secret


def split_peer_token(token: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` of a ``cp_<prefix>_<secret>`` token, or None if it is not one."""
    return split_token(token, marker=PEER_TOKEN_PREFIX)


@dataclass(frozen=True)
class AuthenticatedPeer:
    """``request.user`` on the federation endpoints: a peer hub, not a user of this hub."""

    peer: Peer
    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    pk = None

    def get_username(self) -> str:
        return f"peer:{self.peer.hub_id}"

    def __str__(self) -> str:
        return self.get_username()


class PeerAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer cp_<prefix>_<secret>``, checked against the peer's hashed secret."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send exactly: Authorization: Bearer cp_<prefix>_<secret>."
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The token is not ASCII.") from exc
        parts = split_peer_token(token)
        if parts is None:
            raise exceptions.AuthenticationFailed(
                "The token is not a Concordat peer token (cp_<prefix>_<secret>)."
            )
        peer = authenticate_peer_token(*parts)
        if peer is None:
            raise exceptions.AuthenticationFailed("Unknown or wrong peer token.")
        return AuthenticatedPeer(peer), peer

    def authenticate_header(self, request):
        return 'Bearer realm="concordat-federation"'


def authenticate_peer_token(prefix: str, secret: str) -> Peer | None:
    """The peer whose inbound credential is ``cp_<prefix>_<secret>``, or None. The comparison
    runs (against a dummy hash) even when no peer has the prefix, so timing does not tell."""
    peer = Peer.objects.filter(inbound_prefix=prefix).exclude(inbound_prefix="").first()
    presented = hash_peer_secret(secret)
    expected = peer.inbound_secret_hash if peer is not None and peer.inbound_secret_hash else None
    if not hmac.compare_digest(presented, expected or "0" * 64) or expected is None:
        return None
    return peer


def peer_of_request(request) -> Peer | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, Peer) else None


class IsActivePeer(permissions.BasePermission):
    """An authenticated peer whose state is active; a suspended peer is refused (403)."""

    message = "This peer is suspended on this hub; nothing it sends is accepted."
    code = "peer_suspended"

    def has_permission(self, request, view) -> bool:
        peer = peer_of_request(request)
        if peer is None:
            return False
        if not peer.is_active:
            raise Forbidden(self.message, code=self.code)
        return True


class PeerRateThrottle(throttling.SimpleRateThrottle):
    """Requests per peer hub, at ``settings.FEDERATION_PEER_RATE`` (e.g. ``"600/minute"``).

    Counted in the default cache, so per process with the local-memory cache (as the member
    rate limit is); a shared cache makes it per hub."""

    scope = "federation_peer"

    def get_rate(self):
        return settings.FEDERATION_PEER_RATE

    def allow_request(self, request, view):
        # The rate is read on every request (not once at construction), so a changed setting
        # holds at once.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        peer = peer_of_request(request)
        ident = f"peer:{peer.hub_id}" if peer is not None else f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def peer_inbound_credential_issue(*, actor: Actor, peer: Peer) -> str:
    """Issue the credential ``peer`` presents to this hub; returns ``cp_<prefix>_<secret>``
    (shown once: only the prefix and a SHA-256 of the secret are kept). A previous inbound
    credential stops working. Audited ``peer.credential_issued`` (direction ``inbound``)."""
    for _attempt in range(3):
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                Peer.objects.filter(pk=peer.pk).update(
                    inbound_prefix=prefix,
                    inbound_secret_hash=hash_peer_secret(secret),
                    updated_at=timezone.now(),
                )
                audit_record(
                    AuditRecord(
                        action=Action.PEER_CREDENTIAL_ISSUED,
                        actor=actor,
                        organisation="",
                        object_type=ObjectType.PEER,
                        object_id=peer.hub_id,
                        data={Key.DIRECTION: "inbound", Key.PREFIX: prefix},
                    )
                )
        except IntegrityError:
            continue  # a prefix collision (2**-48): draw again
        peer.inbound_prefix = prefix
        peer.inbound_secret_hash = hash_peer_secret(secret)
        return f"{PEER_TOKEN_PREFIX}{prefix}_{secret}"
    raise RuntimeError("could not draw a unique peer credential prefix")
