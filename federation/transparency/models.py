"""Audit events, the stored Merkle tree levels and signed checkpoints."""

from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One recorded action. Append-only: on PostgreSQL a trigger refuses every UPDATE and DELETE
    except the sequencer setting ``leaf_index`` once (migration 0004, docs/transparency.md).

    Actors and organisations are stored as plain text, not foreign keys, so that the record stays
    exactly as written whatever later happens to users or organisations.
    """

    occurred_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=200)
    actor_label = models.CharField(max_length=200, blank=True)
    organisation = models.CharField(max_length=64, blank=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict)
    # Unique where set: an index of the sequenced events only, so that writing an event (its
    # leaf_index still NULL) costs no entry in it (migration 0033).
    leaf_index = models.BigIntegerField(null=True, blank=True, editable=False)

    # Indexed by action too, but for the two actions written once per contribution and per
    # vetted entry (no read finds those by action alone): made by migration 0038 in SQL, as its
    # condition names actions, which only federation/transparency/actions.py spells.
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["leaf_index"],
                condition=models.Q(leaf_index__isnull=False),
                name="auditevent_leaf_index_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["organisation", "occurred_at"]),
            models.Index(fields=["object_type", "object_id"]),
            models.Index(
                fields=["id"],
                condition=models.Q(leaf_index__isnull=True),
                name="auditevent_unsequenced",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action}"


class MerkleNode(models.Model):
    """The hash of one complete subtree: level 0 holds leaf hashes, level k the subtree over leaves
    ``[index * 2**k, (index + 1) * 2**k)``. Proofs are read from here, never recomputed from leaves.
    Immutable (a trigger refuses UPDATE and DELETE on PostgreSQL)."""

    pk = models.CompositePrimaryKey("level", "index")
    level = models.SmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class Checkpoint(models.Model):
    """A signed statement of the log's size and root (C2SP tlog-checkpoint in a signed note).
    Immutable (a trigger refuses UPDATE and DELETE on PostgreSQL)."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    note = models.TextField(help_text="The signed note exactly as served.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-tree_size"]

    def __str__(self) -> str:
        return f"checkpoint {self.tree_size}"


class SequencerStatus(models.Model):
    """The sequencer's health, one row (pk 1). Written outside the batch transaction, so that a
    refusal (which rolls its batch back) is still recorded and shown by the log's status and
    health endpoints until a later run succeeds."""

    class State(models.TextChoices):
        OK = "ok", "Sequencing"
        REFUSED = "refused", "Refusing to sequence"

    state = models.CharField(max_length=16, choices=State.choices, default=State.OK)
    reason = models.TextField(blank=True)
    since = models.DateTimeField(default=timezone.now, help_text="When the state last changed.")
    last_refused_at = models.DateTimeField(null=True, blank=True)
    refusals = models.PositiveIntegerField(default=0, help_text="Refused runs since the last OK.")

    def __str__(self) -> str:
        return f"sequencer {self.state}"


# --- Witnessing (docs/transparency.md, "Witnesses") ---------------------------------------------


class WitnessedLog(models.Model):
    """Another hub's log that this hub witnesses: its origin line, the signed-note key its
    checkpoints must carry, and the latest checkpoint this hub cosigned for it (C2SP tlog-witness
    keeps exactly that per origin). ``tree_size`` 0 with no root means never cosigned."""

    class State(models.TextChoices):
        ACTIVE = "active", "Witnessing"
        SPLIT_VIEW = "split_view", "Split view seen: refusing to cosign"

    origin = models.CharField(max_length=255, unique=True)
    vkey = models.CharField(max_length=255, help_text="The log's signed-note verifier key.")
    tree_size = models.BigIntegerField(default=0, help_text="Of the latest cosigned checkpoint.")
    root_hash = models.BinaryField(max_length=32, null=True, blank=True)
    checkpoint = models.TextField(
        blank=True, help_text="The latest cosigned checkpoint: the log's note and our cosignature."
    )
    cosigned_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.origin


class Witness(models.Model):
    """A witness of this hub's log: its cosigner key and ``add-checkpoint`` URL prefix, and what
    it last cosigned (its C2SP state as this hub knows it: the old size of the next request).
    The configuration changes through audited services; the delivery fields (sizes, times, the
    last error) are bookkeeping written by the collecting task."""

    name = models.CharField(max_length=255, unique=True, help_text="The witness's key name.")
    vkey = models.CharField(max_length=255, help_text="Its cosigner key (type 0x04 vkey).")
    url = models.URLField(max_length=500, help_text="Its submission prefix.")
    active = models.BooleanField(default=True)
    tree_size = models.BigIntegerField(default=0, help_text="The size it last cosigned for us.")
    last_cosigned_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "witnesses"

    def __str__(self) -> str:
        return self.name


class Cosignature(models.Model):
    """A witness's cosignature on one of this hub's checkpoints (a signed-note signature line).
    Not an audit event of its own: recording each in the log would make a new checkpoint for the
    witnesses to cosign, for ever. It is signed, so it proves itself."""

    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.CASCADE, related_name="cosignatures"
    )
    witness = models.ForeignKey(Witness, on_delete=models.PROTECT, related_name="cosignatures")
    line = models.TextField(help_text="The signature line, as the witness returned it.")
    timestamp = models.BigIntegerField(help_text="The cosignature's own time (POSIX seconds).")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "witness"], name="one_cosignature_each")
        ]

    def __str__(self) -> str:
        return f"{self.witness} on {self.checkpoint}"


class SplitViewEvidence(models.Model):
    """Two checkpoints of one log, both signed by its key, that cannot both be honest: the one
    this hub had cosigned and one shown to it later, of the same size with another root, or with
    a consistency proof between them that does not verify. Kept for anyone to check."""

    class Kind(models.TextChoices):
        SAME_SIZE = "same_size", "Same size, different root"
        INCONSISTENT = "inconsistent", "The consistency proof does not verify"

    witnessed_log = models.ForeignKey(WitnessedLog, on_delete=models.PROTECT, related_name="+")
    origin = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    cosigned_note = models.TextField(help_text="The checkpoint this hub had cosigned.")
    shown_note = models.TextField(help_text="The conflicting checkpoint it was shown.")
    old_size = models.BigIntegerField()
    proof = models.JSONField(default=list, help_text="The consistency proof sent (base64).")
    reason = models.TextField()
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "split view evidence"

    def __str__(self) -> str:
        return f"split view of {self.origin} ({self.kind})"
