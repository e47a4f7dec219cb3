"""Input and output shapes of the vetting, feedback, incident, label and policy API."""

from django.utils import timezone
from rest_framework import serializers

from federation.api.fields import StrictBooleanField
from federation.contributions.models import Entry, Label
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.services import REASON_TEXT, DisputeOutcome
from members.validators import validate_display_name


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", trim_whitespace=True
    )


class RequiredReasonSerializer(serializers.Serializer):
    """The body of a reject (schema only: the view reads it with ``ReasonSerializer`` and the
    service answers ``400 reason_required`` for a missing or blank reason)."""

    reason = serializers.RegexField(
        REASON_TEXT, max_length=2000, help_text="Why; required, not only whitespace."
    )


class ResolveSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=list(DisputeOutcome.values))
    reason = serializers.RegexField(REASON_TEXT, max_length=2000)


class FeedbackInputSerializer(serializers.Serializer):
    opinion = serializers.ChoiceField(choices=Feedback.Opinion.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class QueueEntrySerializer(serializers.ModelSerializer):
    """A pending entry as a reviewer sees it in the queue."""

    labels = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")
    contributors = serializers.SerializerMethodField()
    incidents = serializers.SerializerMethodField()

    class Meta:
        model = Entry
        fields = [
            "id",
            "signal_type",
            "value",
            "state",
            "review_round",
            "labels",
            "contributors",
            "incidents",
            "created_at",
            "updated_at",
        ]

    def get_contributors(self, entry) -> list[str]:
        return sorted({c.organisation.slug for c in entry.active_adds})

    def get_incidents(self, entry) -> list[str]:
        return sorted({str(c.incident_id) for c in entry.active_adds if c.incident_id})


class DecisionSerializer(serializers.ModelSerializer):
    # Both are null on a consortium admin's ruling and on the policy's automatic decisions.
    organisation = serializers.SlugRelatedField(read_only=True, slug_field="slug", allow_null=True)
    user = serializers.SlugRelatedField(read_only=True, slug_field="username", allow_null=True)

    class Meta:
        model = Decision
        fields = [
            "id",
            "entry",
            "review_round",
            "kind",
            "verdict",
            "organisation",
            "user",
            "reason",
            "policy",
            "created_at",
        ]


class VoteResultSerializer(serializers.Serializer):
    decision = DecisionSerializer()
    entry_state = serializers.CharField(source="entry.state")


class FeedbackSerializer(serializers.ModelSerializer):
    organisation = serializers.SlugRelatedField(read_only=True, slug_field="slug")

    class Meta:
        model = Feedback
        fields = ["entry", "organisation", "opinion", "note", "created_at", "updated_at"]


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["slug", "name", "description", "active"]


class IncidentSerializer(serializers.ModelSerializer):
    active = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "name",
            "description",
            "started_at",
            "ended_at",
            "auto_vet",
            "quorum",
            "active",
        ]

    def get_active(self, incident) -> bool:
        return incident.is_active_at(timezone.now())


class IncidentDeclareSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, validators=[validate_display_name])
    description = serializers.CharField(required=False, allow_blank=True, default="")
    started_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    auto_vet = StrictBooleanField(required=False, default=True)
    quorum = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=100
    )


class IncidentCloseSerializer(serializers.Serializer):
    ended_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class VettingPolicySerializer(serializers.ModelSerializer):
    auto_vet_trusted = StrictBooleanField(
        required=False, help_text="Vet contributions from trusted members without review."
    )

    class Meta:
        model = VettingPolicy
        fields = ["quorum", "auto_vet_trusted", "dispute_threshold", "updated_at"]
        read_only_fields = ["updated_at"]
        extra_kwargs = {
            "quorum": {"min_value": 1, "max_value": 100},
            "dispute_threshold": {"min_value": 1, "max_value": 100},
        }
