"""The hub's vetting policy, incidents, recorded decisions and member feedback."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from members.validators import validate_display_name


class VettingPolicy(models.Model):
    """The hub's single vetting policy row (pk 1), edited by consortium admins."""

    quorum = models.PositiveSmallIntegerField(
        default=1, help_text="Approvals needed from organisations other than the contributors'."
    )
    auto_vet_trusted = models.BooleanField(
        default=True, help_text="Vet contributions from trusted members without review."
    )
    dispute_threshold = models.PositiveSmallIntegerField(
        default=2,
        help_text="Distinct organisations disagreeing (or reporting a false positive) that dispute an entry.",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "vetting policy"

    def __str__(self) -> str:
        return "Vetting policy"

    @classmethod
    def current(cls) -> "VettingPolicy":
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy


class Incident(models.Model):
    """A declared crisis (like GIFCT's Content Incident Protocol); tagged contributions take a fast lane."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, validators=[validate_display_name])
    description = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    auto_vet = models.BooleanField(
        default=True,
        help_text="While active, tagged contributions are vetted without waiting for a quorum.",
    )
    quorum = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Quorum while active when not auto-vetting; blank keeps the hub's.",
    )
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name

    def is_active_at(self, moment) -> bool:
        return self.started_at <= moment and (self.ended_at is None or moment < self.ended_at)


class Decision(models.Model):
    """One recorded vetting step: a reviewer's vote, an automatic policy decision, or an admin ruling."""

    class Kind(models.TextChoices):
        VOTE = "vote", "Reviewer vote"
        POLICY = "policy", "Automatic (policy)"
        ADMIN = "admin", "Consortium admin"

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    entry = models.ForeignKey(
        "federation.Entry", on_delete=models.PROTECT, related_name="decisions", db_constraint=False
    )
    review_round = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,  # indexed where set (Meta): an automatic decision has neither
    )
    organisation = models.ForeignKey(
        "members.Organisation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    reason = models.TextField(blank=True)
    policy = models.JSONField(default=dict, help_text="The policy that applied, as it stood.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["entry", "review_round", "organisation"],
                condition=models.Q(kind="vote"),
                name="decision_one_vote_per_organisation_per_round",
            ),
        ]
        indexes = [
            models.Index(
                fields=["user"], condition=models.Q(user__isnull=False), name="decision_user"
            ),
            models.Index(
                fields=["organisation"],
                condition=models.Q(organisation__isnull=False),
                name="decision_organisation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.verdict} on entry {self.entry_id}"


class Feedback(models.Model):
    """A member organisation's current opinion of a vetted entry."""

    class Opinion(models.TextChoices):
        AGREE = "agree", "Agree"
        DISAGREE = "disagree", "Disagree"
        FALSE_POSITIVE = "false_positive", "False positive"

    entry = models.ForeignKey("federation.Entry", on_delete=models.PROTECT, related_name="feedback")
    organisation = models.ForeignKey(
        "members.Organisation", on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opinion = models.CharField(max_length=16, choices=Opinion.choices)
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(
                fields=["entry", "organisation"], name="feedback_one_per_organisation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id}: {self.opinion} on entry {self.entry_id}"
