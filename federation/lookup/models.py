"""The private lookup's rows (docs/private-lookup.md): the OPRF key's public history, the lookup
table (one truncated PRF output per exact-hash entry of the shared set, kept current from the
change stream), and per-credential daily usage counters."""

from django.db import models
from django.utils import timezone


class LookupKey(models.Model):
    """A public OPRF key this hub has served lookups with. The current one has no ``retired_at``;
    the secret scalar lives in the key file (``LOOKUP_KEY_PATH``), never in the database. Every
    row is announced in the transparency log (``lookup.key_created``, ``lookup.key_retired``)."""

    key_id = models.CharField(max_length=32, unique=True, editable=False)
    public_key = models.BinaryField(max_length=32, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["retired_at"],
                condition=models.Q(retired_at__isnull=True),
                name="lookupkey_one_current",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"lookup key {self.key_id}"


class LookupState(models.Model):
    """The table's single state row (pk 1): the key its tags were computed with, the stream
    position it reflects, and the position it was last built at (deltas from before it are
    refused: the client downloads the table whole)."""

    key_id = models.CharField(max_length=32, blank=True)
    position = models.BigIntegerField(default=0)
    base_position = models.BigIntegerField(default=0)
    built_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"lookup table of {self.key_id or 'no key'} at {self.position}"


class LookupTag(models.Model):
    """One entry's row of the table: the first ``LOOKUP_TAG_BYTES`` of the PRF output of its
    signal, its state as lookup clients see it (``vetted``, ``disputed``, or ``removed``: a
    tombstone, so that deltas carry removals), and the stream position of its last change."""

    entry = models.OneToOneField(
        "federation.Entry", on_delete=models.PROTECT, primary_key=True, related_name="+"
    )
    tag = models.BinaryField(max_length=32)
    state = models.CharField(max_length=16)
    position = models.BigIntegerField(db_index=True)

    def __str__(self) -> str:
        return f"lookup tag of entry {self.entry_id} ({self.state})"


class LookupUsage(models.Model):
    """How many blinded elements a credential had evaluated on one UTC day (and in how many
    requests, and how many requests the limit refused): the rate limit's counter, and what the
    ``lookup.usage`` event reports once the day is over. Never the elements themselves."""

    credential = models.ForeignKey(
        "members.ApiCredential", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    evaluations = models.BigIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    audited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credential", "day"], name="lookupusage_credential_day")
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} on {self.day}: {self.evaluations}"
