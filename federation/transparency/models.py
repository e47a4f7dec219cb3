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
    leaf_index = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["action", "occurred_at"]),
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
