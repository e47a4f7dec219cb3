"""Federation's rows: the outbox, the receipts of what arrived, key bindings and per-peer sync."""

from django.db import models
from django.utils import timezone


class OutboxItem(models.Model):
    """One item owed to one peer, written in the transaction that made it shareable.

    ``kind`` says what travels (docs/federation.md, "Items"): a contribution (with its entry's
    attestation), an entry's new state alone (a dispute or its outcome), or a key binding (a
    revocation). ``path`` is the hop path the item arrived with (empty for this hub's own
    members' items); the sender appends its own hub id when it builds the item.
    """

    class Kind(models.TextChoices):
        CONTRIBUTION = "contribution", "Contribution"
        ENTRY = "entry", "Entry state"
        KEY = "key", "Key binding"

    class Lane(models.TextChoices):
        INCIDENT = "incident", "Incident (high priority)"
        NORMAL = "normal", "Normal"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        REFUSED = "refused", "Refused by the peer"
        DEAD = "dead", "Dead letter"

    peer = models.ForeignKey(
        "members.Peer", on_delete=models.CASCADE, related_name="outbox", db_constraint=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    contribution = models.ForeignKey(
        "federation.Contribution",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    entry = models.ForeignKey(
        "federation.Entry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    signing_key = models.ForeignKey(
        "members.SigningKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    path = models.JSONField(default=list, blank=True)
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.NORMAL)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="In flight until then: a worker claimed it; after it, the row is due again.",
    )
    last_error = models.TextField(blank=True)
    digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the item as sent.")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # A lane is drained oldest first (docs/federation.md, "Sending").
            models.Index(
                fields=["peer", "lane", "id"],
                condition=models.Q(state="pending"),
                name="outbox_pending_fifo",
            ),
            models.Index(
                fields=["peer", "state"],
                condition=~models.Q(state="delivered"),
                name="outbox_undelivered",
            ),
            # "Never twice to the same peer" (federation.propagation.outbox) probes this for
            # every (contribution, peer) it considers; without it the probe scans the peer's
            # whole outbox, and a 10,000-item bulk costs minutes.
            models.Index(
                fields=["contribution", "peer"],
                condition=models.Q(kind="contribution"),
                name="outbox_contribution_peer",
            ),
            # The transparency report counts the items delivered in a period, per peer
            # (federation.reports.selectors.federation_by_peer): a range of delivery times.
            models.Index(
                fields=["delivered_at"],
                condition=models.Q(state="delivered"),
                name="outbox_delivered_at",
            ),
        ]

    def __str__(self) -> str:
        # Named by the peer's hub id (the admin's page titles); the admin selects the peer.
        return f"{self.get_kind_display().lower()} for {self.peer.hub_id} ({self.state})"


class Receipt(models.Model):
    """One arrival of a contribution from a peer. A contribution is stored once however many
    paths bring it; each (contribution, peer) arrival is a receipt, with what came with it.
    ``effective_scope`` is the scope the contribution has on this hub (``peers`` arrives as
    ``hub``), never written into the signed object."""

    class Via(models.TextChoices):
        PUSH = "push", "Push"
        PULL = "pull", "Pull"

    # No index of its own: the unique (contribution, peer_hub) index serves every lookup by
    # contribution, and one index fewer is written per received item.
    contribution = models.ForeignKey(
        "federation.Contribution",
        on_delete=models.PROTECT,
        related_name="receipts",
        db_constraint=False,
        db_index=False,
    )
    peer_hub = models.CharField(max_length=200, help_text="The hub it arrived from.")
    via = models.CharField(max_length=8, choices=Via.choices)
    path = models.JSONField(default=list)
    attestations = models.JSONField(default=list, help_text="As received, signatures included.")
    sent_to = models.JSONField(
        default=list,
        blank=True,
        help_text="The hubs the item said it was also sent to (off its path): not pushed to.",
    )
    effective_scope = models.CharField(max_length=16)
    batch_id = models.UUIDField(null=True, blank=True)
    digest = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["contribution", "peer_hub"], name="receipt_contribution_peer_unique"
            )
        ]
        # The transparency report counts the items received in a period, per peer.
        indexes = [models.Index(fields=["received_at"], name="receipt_received_at")]

    def __str__(self) -> str:
        return f"{self.contribution_id} from {self.peer_hub}"


class PulledItem(models.Model):
    """An item a peer pulled from this hub's feed (``federation.propagation.feed``): the first
    page that offered it, and that page's ``federation.sent`` event (which names items by digest
    only), so that an entry's page can say which peers pulled it. One row per peer and item: a
    page offering the item again (the entry changed, the peer read from 0 again) adds none."""

    peer = models.ForeignKey(
        "members.Peer", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    kind = models.CharField(max_length=16, choices=OutboxItem.Kind.choices)
    entry = models.ForeignKey(
        "federation.Entry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    contribution = models.ForeignKey(
        "federation.Contribution",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    signing_key = models.ForeignKey(
        "members.SigningKey",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    event = models.ForeignKey(
        "federation.AuditEvent",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    digest = models.CharField(max_length=64, help_text="SHA-256 of the item as offered.")
    pulled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["peer", "contribution"],
                condition=models.Q(kind="contribution"),
                name="pulleditem_contribution_once",
            ),
            models.UniqueConstraint(
                fields=["peer", "entry"],
                condition=models.Q(kind="entry"),
                name="pulleditem_entry_state_once",
            ),
            models.UniqueConstraint(
                fields=["peer", "signing_key"],
                condition=models.Q(kind="key"),
                name="pulleditem_key_once",
            ),
        ]
        indexes = [
            # The transparency report counts the items each peer first pulled in a period
            # (federation.reports.selectors.federation_by_peer): a range of first-pull times.
            models.Index(fields=["pulled_at"], name="pulleditem_pulled_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} pulled by {self.peer_id}"


class KeyBinding(models.Model):
    """The home hub's signed binding of a member key, kept verbatim: for this hub's own members'
    keys, signed here; for a foreign member's key, as its home hub signed it. The newest binding
    (``issued_at``) of a key is the one in force; a revocation is a binding with ``revoked_at``.
    Each binding also takes a ``position`` in the sync change stream, so that the pull feed
    carries it (a revocation whose push failed still reaches the peer)."""

    signing_key = models.ForeignKey(
        "members.SigningKey", on_delete=models.PROTECT, related_name="bindings"
    )
    canonical = models.TextField(help_text="The binding's RFC 8785 bytes (UTF-8 JSON).")
    signature = models.BinaryField(max_length=64)
    issued_at = models.DateTimeField()
    received_from = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    position = models.BigIntegerField(
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="Its place in the change stream (the pull feed offers it as a key item), given "
        "by the stream's sequencer once the row is committed.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["signing_key", "issued_at"], name="keybinding_key_issued_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(position__isnull=True),
                name="keybinding_unsequenced",
            ),
        ]

    def __str__(self) -> str:
        return f"binding of {self.signing_key_id} at {self.issued_at}"


class PeerLink(models.Model):
    """A linked peer's delivery and pull state: what the admin's health view shows."""

    peer = models.OneToOneField("members.Peer", on_delete=models.CASCADE, related_name="link")
    pull_cursor = models.BigIntegerField(default=0, help_text="The peer's feed position we hold.")
    pull_horizon = models.BigIntegerField(
        default=0,
        help_text="The peer's compaction horizon when our reading of its feed began from 0 "
        "(its Concordat-Feed-Horizon; 0: none).",
    )
    last_push_at = models.DateTimeField(null=True, blank=True)
    last_push_error = models.TextField(blank=True)
    last_push_error_at = models.DateTimeField(null=True, blank=True)
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_pull_error = models.TextField(blank=True)
    last_pull_error_at = models.DateTimeField(null=True, blank=True)
    last_received_at = models.DateTimeField(null=True, blank=True)
    takes_attestation_roots = models.BooleanField(
        default=False,
        help_text="Whether the peer's last answer to a push said it takes attestations under a "
        "signed root (Concordat-Attestation-Roots); pushes then sign one root per batch.",
    )
    # The peer's pulls of *our* feed (the fields above are ours of its feed): the highest cursor
    # it asked a served page from, which it sends only once it has stored every page before it
    # (no higher than our stream's end then). Dead letters it has so pulled past are moot.
    peer_pulled_through = models.BigIntegerField(
        default=0,
        help_text="How far the peer has pulled our feed: the highest 'after' of a page we served "
        "it (capped at our stream's end then).",
    )
    peer_pulled_at = models.DateTimeField(
        null=True, blank=True, help_text="When we last served the peer a page of our feed."
    )

    def __str__(self) -> str:
        return f"link to {self.peer_id}"
