"""The change stream's rows and the sequencer's state."""

from django.db import models
from django.utils import timezone


class EntryChange(models.Model):
    """One change to what members may see about an entry, written in the changing transaction.

    The row names the entry, not its new state: the delta API renders the entry as it stands when
    read, so a later state is never hidden behind an earlier one. ``position`` is given by the
    sequencer, only once the row is committed (docs/sync.md, "Cursor guarantees").
    """

    entry = models.ForeignKey(
        "federation.Entry",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    reason = models.CharField(max_length=32, help_text="What changed: vetted, disputed, …")
    recorded_at = models.DateTimeField(default=timezone.now)
    # Unique where set: a row written (its position still NULL) costs no entry in that index.
    position = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["position"],
                condition=models.Q(position__isnull=False),
                name="entrychange_position_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(position__isnull=True),
                name="entrychange_unsequenced",
            ),
            models.Index(fields=["entry", "position"], name="entrychange_entry_position"),
        ]

    def __str__(self) -> str:
        return f"change {self.position} of entry {self.entry_id}"


class SyncState(models.Model):
    """The stream's single state row (pk 1): the last position given, and how far compaction has
    removed removals (cursors before ``compacted_through`` are stale)."""

    last_position = models.BigIntegerField(default=0)
    compacted_through = models.BigIntegerField(default=0)
    compacted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sync stream at {self.last_position}"
