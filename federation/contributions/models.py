"""Labels, entries (the hub's view of one signal) and the immutable signed contributions."""

from django.db import models
from django.utils import timezone

from federation.db.lookups import HasLabel


class SignalType(models.TextChoices):
    PDQ = "pdq", "PDQ photo hash"
    MD5 = "md5", "MD5"
    SHA256 = "sha256", "SHA-256"
    VPDQ = "vpdq", "vPDQ video hash"


class ContributionScope(models.TextChoices):
    """How far a vetted entry may travel, as the member signed it (docs/signing.md)."""

    HUB = "hub", "This hub only"
    PEERS = "peers", "Direct peers"
    FEDERATION = "federation", "The whole federation"


class Label(models.Model):
    """One term of the managed taxonomy; contributions may only use active labels."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField()
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Entry(models.Model):
    """The hub's current view of one signal: its state, labels and contributions."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending review"
        VETTED = "vetted", "Vetted"
        REJECTED = "rejected", "Rejected"
        RETRACTED = "retracted", "Retracted"
        DISPUTED = "disputed", "Disputed"

    signal_type = models.CharField(max_length=16, choices=SignalType.choices)
    value = models.CharField(max_length=128)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    review_round = models.PositiveIntegerField(
        default=1,
        help_text="Increases whenever the entry goes back to review; votes count per round.",
    )
    labels = models.ManyToManyField(Label, through="EntryLabel", related_name="entries")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    state_changed_at = models.DateTimeField(default=timezone.now)
    dispute_resolved_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Feedback older than this no longer counts towards a dispute.",
    )

    class Meta:
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(fields=["signal_type", "value"], name="entry_signal_unique"),
        ]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.signal_type}:{self.value}"


# The shared set: the states in which members see an entry (sync, matching, lookup, TAXII) and
# peers are sent it (docs/sync.md, "What you see"). ``SHARED_STATES_SQL`` is the same set as an
# SQL list, for the statements that name states inline.
SHARED_STATES = (Entry.State.VETTED, Entry.State.DISPUTED)
SHARED_STATES_SQL = "(" + ", ".join(f"'{state.value}'" for state in SHARED_STATES) + ")"


class EntryLabel(models.Model):
    # Keyed by the link itself, its index leading with the entry: a surrogate id had an index
    # of its own that no read used, an entry in it for each label an ingested add links (0039).
    # No database FK (guarded set-based instead): see
    # federation/migrations/0032_set_based_references.py.
    pk = models.CompositePrimaryKey("entry", "label")
    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    label = models.ForeignKey(Label, on_delete=models.PROTECT, db_constraint=False)

    def __str__(self) -> str:
        return f"{self.entry_id}:{self.label_id}"


class Contribution(models.Model):
    """One signed statement by a member about a signal. Never changed after it is stored,
    except ``status`` and ``withdrawn_by``, which record that a later retraction withdrew an
    ``add`` (on PostgreSQL a trigger refuses any other UPDATE, and every DELETE)."""

    class Action(models.TextChoices):
        ADD = "add", "Add"
        RETRACT = "retract", "Retract"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn by a retraction"
        APPLIED = "applied", "Retraction applied"

    uuid = models.UUIDField(
        unique=True, help_text="Chosen by the submitter; makes submission idempotent."
    )
    # Foreign-key indexes are chosen by hand (Meta.indexes): each index costs every bulk insert,
    # and the composite ones already serve lookups by organisation and by entry.
    organisation = models.ForeignKey(
        "members.Organisation",
        on_delete=models.PROTECT,
        related_name="contributions",
        db_index=False,
        db_constraint=False,
    )
    signing_key = models.ForeignKey(
        "members.SigningKey",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    entry = models.ForeignKey(
        Entry,
        on_delete=models.PROTECT,
        related_name="contributions",
        db_index=False,
        db_constraint=False,
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    labels = models.JSONField(default=list)
    scope = models.CharField(max_length=16, choices=ContributionScope.choices)
    incident = models.ForeignKey(
        "federation.Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contributions",
        db_index=False,
        db_constraint=False,
    )
    quality = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(help_text="The signer's claimed time, as signed.")
    received_at = models.DateTimeField(default=timezone.now)
    canonical = models.TextField(help_text="The exact signed bytes (RFC 8785 JSON, UTF-8).")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical bytes, hex.")
    signature = models.BinaryField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    withdrawn_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="withdrew",
        db_index=False,
        db_constraint=False,
    )
    origin_hub = models.CharField(max_length=200)

    class Meta:
        indexes = [
            models.Index(fields=["organisation", "received_at"]),
            models.Index(fields=["entry", "organisation", "status"]),
            models.Index(fields=["signing_key"], name="contribution_signing_key"),
            models.Index(
                fields=["incident"],
                condition=models.Q(incident__isnull=False),
                name="contribution_incident",
            ),
            models.Index(
                fields=["withdrawn_by"],
                condition=models.Q(withdrawn_by__isnull=False),
                name="contribution_withdrawn_by",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.uuid}"


# The reports filter contributions by a signed label on PostgreSQL and on the demo's SQLite.
Contribution._meta.get_field("labels").register_lookup(HasLabel)
