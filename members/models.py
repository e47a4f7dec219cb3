"""Who may act on the hub: organisations, roles, signing keys and API credentials."""

import hashlib
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from members.validators import validate_display_name


class Role(models.TextChoices):
    """Roles a user holds inside a member organisation."""

    SUBMITTER = "submitter", "Submitter"
    REVIEWER = "reviewer", "Reviewer"
    MEMBER_ADMIN = "member-admin", "Member admin"


class StaffRoleName(models.TextChoices):
    """Roles of the hub's own staff."""

    CONSORTIUM_ADMIN = "consortium-admin", "Consortium admin"
    AUDITOR = "auditor", "Auditor"


def local_hub_id() -> str:
    """The hub id of organisations that are members of this hub (``settings.HUB_ID``)."""
    return settings.HUB_ID


class Organisation(models.Model):
    """A member organisation (a platform), identified by (hub, slug).

    ``hub`` is the id of the member's home hub: ``settings.HUB_ID`` for this hub's own members
    (the default), another hub's id for a *foreign* member, a read-only mirror that federation
    keeps of a member of a peer hub. A foreign member can never log in, hold API credentials or
    memberships, register keys here or vote (docs/architecture.md, "Identities across hubs").
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    hub = models.CharField(
        max_length=200,
        default=local_hub_id,
        editable=False,
        help_text="The member's home hub; this hub's id for its own members.",
    )
    slug = models.SlugField(
        max_length=64, help_text="Names the member in signed objects (unique per hub)."
    )
    name = models.CharField(max_length=200, validators=[validate_display_name])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    trusted = models.BooleanField(
        default=False, help_text="Contributions from trusted members are vetted automatically."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hub", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["hub", "slug"], name="organisation_hub_slug_unique")
        ]

    def __str__(self) -> str:
        return self.slug if self.is_local else f"{self.slug}@{self.hub}"

    @property
    def is_local(self) -> bool:
        """A member of this hub (not a mirror of another hub's member)."""
        return self.hub == settings.HUB_ID

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    """A user's role in their organisation; a user belongs to at most one organisation."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} ({self.role} at {self.organisation})"


class StaffRole(models.Model):
    """A hub staff role: consortium admins run the hub, auditors read the log and reports."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_role"
    )
    role = models.CharField(max_length=24, choices=StaffRoleName.choices)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


def key_id_for(public_key: bytes) -> str:
    """The documented key id: hex of the first 16 bytes of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()[:32]


class SigningKey(models.Model):
    """An Ed25519 public key an organisation signs contributions with. It belongs to (hub,
    organisation) through ``organisation``.

    A key signs validly for ``not_before <= t < revoked_at``. Several keys may be active at once so
    that members can rotate without a gap. ``registration`` and ``registration_signature`` are the
    member's proof of possession exactly as received: the RFC 8785 bytes of the ``concordat.key``
    registration object and the key's own signature over them (docs/signing.md, "Key
    registration"); federation forwards them as the member's binding of key to member. Both are
    empty only for keys registered before proofs were required.
    """

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="signing_keys"
    )
    key_id = models.CharField(max_length=32, unique=True, editable=False)
    public_key = models.BinaryField(max_length=32, editable=False)
    label = models.CharField(max_length=100, blank=True, validators=[validate_display_name])
    not_before = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    registration = models.TextField(
        blank=True,
        editable=False,
        help_text="The signed registration object: its exact RFC 8785 bytes (UTF-8 JSON).",
    )
    registration_signature = models.BinaryField(
        max_length=64,
        blank=True,
        default=b"",
        editable=False,
        help_text="The registered key's Ed25519 signature over the registration bytes.",
    )

    class Meta:
        ordering = ["organisation", "-created_at"]

    def __str__(self) -> str:
        return f"{self.organisation}:{self.key_id}"

    def is_active_at(self, moment: datetime) -> bool:
        return self.not_before <= moment and (self.revoked_at is None or moment < self.revoked_at)

    @property
    def public_key_bytes(self) -> bytes:
        return bytes(self.public_key)


class Scope(models.TextChoices):
    """What an API credential may be used for; intersected with its holder's role on every request."""

    READ = "read", "Read entries and own contributions"
    SUBMIT = "submit", "Submit contributions"
    REVIEW = "review", "Vet entries and give feedback"
    MANAGE = "manage", "Manage the organisation's keys, credentials and roles"
    AUDIT = "audit", "Read the transparency log and reports"
    HUB_ADMIN = "hub-admin", "Run the hub (incidents, disputes, policy)"
    METRICS = "metrics", "Read the hub's monitoring metrics"
    # The only scope of a lookup-only credential (docs/private-lookup.md); members look up with
    # ``read``, which includes it.
    LOOKUP = "lookup", "Private lookup only: evaluate blinded hashes, download the lookup table"


class ApiCredential(models.Model):
    """A bearer token for the API. Only a SHA-256 of the secret is stored; the token is shown once.

    Tokens look like ``cc_<prefix>_<secret>``: the prefix finds the row, the secret is compared in
    constant time. A token acts as its holder, with no more than the holder's role allows.

    A credential of kind ``lookup`` belongs to a non-member platform (a holder with no membership
    and no staff role): whatever its holder, it can do the private lookup and nothing else
    (docs/private-lookup.md). ``lookup_daily_limit`` caps the blinded elements any credential may
    have evaluated per UTC day; blank means ``LOOKUP_DAILY_EVALUATIONS``.
    """

    class Kind(models.TextChoices):
        STANDARD = "standard", "Standard (the holder's role, narrowed by scopes)"
        LOOKUP = "lookup", "Lookup-only (a non-member platform)"

    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="credentials"
    )
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=100, validators=[validate_display_name])
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STANDARD)
    lookup_daily_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Blinded elements this credential may have evaluated per UTC day; "
        "blank: LOOKUP_DAILY_EVALUATIONS.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (cc_{self.prefix}_…)"

    def is_usable_at(self, moment: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= moment:
            return False
        return self.expires_at is None or moment < self.expires_at


class Peer(models.Model):
    """Another hub this hub federates with, or whose signatures it accepts (docs/federation.md).

    ``public_key`` is the peer's hub key (the one that signs its checkpoints, batches and
    attestations), pinned here and changed only by an audited rotation. A peer with a ``url``
    is a *link*: this hub pushes to it and pulls from it. A peer without one is *known by key
    only*: an origin hub whose members' contributions and attestations may reach this hub through
    other peers, and whose signatures this hub must therefore be able to check.

    Credentials both ways: the peer presents ``cp_<inbound_prefix>_<secret>`` to this hub (only a
    SHA-256 of the secret is stored, as for API credentials); this hub presents
    ``outbound_token`` to the peer (kept as given, because it must be sent).
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class InboundPolicy(models.TextChoices):
        TRUST = "trust", "Trust the peer's vetting"
        REVIEW = "review", "Queue the peer's entries for local review"

    hub_id = models.CharField(max_length=200, unique=True, help_text="The peer's HUB_ID.")
    name = models.CharField(max_length=200, validators=[validate_display_name])
    url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Base URL of the peer's API; blank for a hub known by its key only.",
    )
    public_key = models.BinaryField(max_length=32, help_text="The peer's Ed25519 hub key (raw).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    inbound_policy = models.CharField(
        max_length=16, choices=InboundPolicy.choices, default=InboundPolicy.REVIEW
    )
    outbound_scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="Signed scopes the peer may receive (peers, federation); empty means both.",
    )
    outbound_labels = models.JSONField(
        default=list, blank=True, help_text="Only entries with one of these labels; empty: all."
    )
    outbound_signal_types = models.JSONField(
        default=list, blank=True, help_text="Only these signal types; empty: all."
    )
    inbound_prefix = models.CharField(max_length=16, blank=True, editable=False)
    inbound_secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    outbound_token = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hub_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["inbound_prefix"],
                condition=~models.Q(inbound_prefix=""),
                name="peer_inbound_prefix_unique",
            )
        ]

    def __str__(self) -> str:
        return self.hub_id

    @property
    def public_key_bytes(self) -> bytes:
        return bytes(self.public_key)

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_key_bytes)

    @property
    def is_link(self) -> bool:
        return bool(self.url)

    @property
    def is_active(self) -> bool:
        return self.state == self.State.ACTIVE
