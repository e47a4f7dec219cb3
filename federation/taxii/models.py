"""The STIX objects TAXII serves: one row per version of an indicator or an identity."""

from django.db import models


class StixObjectVersion(models.Model):
    """One version of one STIX object, as TAXII serves it (docs/taxii.md, "Versions").

    An indicator's version is written, without a rendering, in the transaction that changes its
    entry's state (``federation.taxii.versions.stix_versions_record``, from ``federation.downstream``).
    The TAXII sequencer (``stix_versions_sequence``) takes committed rows only, gives them their
    ``date_added`` (never earlier than any given before), their STIX id and ``modified``, and
    renders ``document`` once: a version never changes after that. Identity rows (a
    contributing member) are written by the sequencer itself.
    """

    class Kind(models.TextChoices):
        INDICATOR = "indicator", "Indicator"
        IDENTITY = "identity", "Identity"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    entry = models.ForeignKey(
        "federation.Entry",
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    organisation = models.ForeignKey(
        "members.Organisation",
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    signal_type = models.CharField(max_length=16, blank=True)
    state = models.CharField(max_length=16, blank=True, help_text="The entry state it records.")
    changed_at = models.DateTimeField(help_text="When the change it records was made.")
    # Set once, by the sequencer.
    date_added = models.DateTimeField(null=True, blank=True)
    stix_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveIntegerField(default=0)
    revoked = models.BooleanField(default=False)
    created_by = models.CharField(max_length=64, blank=True, help_text="Its creator's STIX id.")
    document = models.TextField(blank=True, help_text="The STIX object, as served.")
    # Maintained by the sequencer: the object's newest version.
    is_latest = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["date_added", "id"],
                condition=models.Q(date_added__isnull=False),
                name="stixversion_added",
            ),
            models.Index(
                fields=["id"],
                condition=models.Q(date_added__isnull=True),
                name="stixversion_unsequenced",
            ),
            # Every read by object id is of the sequenced versions: an unsequenced one (its
            # stix_id still blank) costs no entry (migration 0036).
            models.Index(
                fields=["stix_id", "modified"],
                condition=models.Q(date_added__isnull=False),
                name="stixversion_object",
            ),
            models.Index(fields=["entry", "date_added"], name="stixversion_entry"),
        ]

    def __str__(self) -> str:
        return f"{self.stix_id or self.kind} {self.modified or self.changed_at}"
