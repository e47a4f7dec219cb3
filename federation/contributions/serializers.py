"""Input and output shapes of the contribution and entry API."""

import base64

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from federation.contributions.models import Contribution, ContributionScope, Entry, SignalType
from federation.signing import CONTRIBUTION_KIND, CONTRIBUTION_VERSION, MAX_LABELS
from federation.video.frames import MAX_FRAMES


class SignalSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=SignalType.choices)
    value = serializers.CharField(
        help_text="Lowercase hex: 64 characters for pdq, sha256 and vpdq (the SHA-256 of the "
        "canonical frames), 32 for md5 (stored lowercase)."
    )
    quality = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="pdq only: its quality, 0-100."
    )
    frames = serializers.ListField(
        child=serializers.ListField(min_length=4, max_length=4),
        required=False,
        min_length=1,
        max_length=MAX_FRAMES,
        help_text="vpdq adds only: the canonical frame list, [frame_number, quality, pdq_hex, "
        "timestamp_ms] in increasing frame number (docs/video.md).",
    )


class ContributionDocumentSerializer(serializers.Serializer):
    """The contribution object a member signs (docs/signing.md). Its RFC 8785 canonical bytes
    are what the signature covers; no other field is accepted. Describes the schema only: the
    hub checks the object field by field in ``federation.signing.parse_contribution``."""

    kind = serializers.ChoiceField(choices=[CONTRIBUTION_KIND])
    v = serializers.IntegerField(
        min_value=CONTRIBUTION_VERSION,
        max_value=CONTRIBUTION_VERSION,
        help_text=f"The integer {CONTRIBUTION_VERSION} (the format's version).",
    )
    hub = serializers.CharField(max_length=200, help_text="This hub's id (GET /api/v1/hub/).")
    member = serializers.SlugField(max_length=64, help_text="Your organisation's slug.")
    key_id = serializers.RegexField(
        r"^[0-9a-f]{32}$", help_text="Hex of the first 16 bytes of SHA-256 of the public key."
    )
    uuid = serializers.UUIDField(help_text="Chosen by you; makes the submission idempotent.")
    created_at = serializers.RegexField(
        r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$",
        help_text="UTC, RFC 3339 with a Z: 2026-01-31T12:00:00Z (fractions up to 6 digits).",
    )
    action = serializers.ChoiceField(choices=Contribution.Action.choices)
    signal = SignalSerializer()
    labels = serializers.ListField(
        child=serializers.SlugField(max_length=64),
        max_length=MAX_LABELS,
        help_text="At least one active label for an add; empty for a retract.",
    )
    scope = serializers.ChoiceField(
        choices=ContributionScope.choices,
        help_text="How far the statement travels. On a retract it is signed but does not limit "
        "the retraction, which reaches every hub its add reached (docs/signing.md).",
    )
    incident = serializers.UUIDField(
        required=False, allow_null=True, help_text="An incident id (fast lane), or absent."
    )


class SubmissionSerializer(serializers.Serializer):
    """One signed contribution as submitted (docs/signing.md)."""

    contribution = ContributionDocumentSerializer(
        help_text="The contribution object that was signed."
    )
    signature = serializers.CharField(
        help_text="Ed25519 signature over the canonical bytes: 64 bytes, standard base64 with "
        "padding (88 characters)."
    )


class BulkSubmissionSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=SubmissionSerializer(),
        min_length=1,
        max_length=settings.BULK_MAX_ITEMS,
        help_text="Up to BULK_MAX_ITEMS signed contributions (GET /api/v1/hub/ gives the limit).",
    )


class ItemErrorSerializer(serializers.Serializer):
    """Why one item was rejected: the codes of the single endpoint (docs/api.md)."""

    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in items (input order).")
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    uuid = serializers.CharField(
        allow_null=True, help_text="The item's uuid, when it could be read (null otherwise)."
    )
    entry_id = serializers.IntegerField(required=False, help_text="created and duplicate only.")
    error = ItemErrorSerializer(required=False, help_text="rejected only.")


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True)


class ContributionSerializer(serializers.ModelSerializer):
    """A stored contribution with everything needed to verify it independently."""

    member = serializers.CharField(source="organisation.slug")
    key_id = serializers.CharField(source="signing_key.key_id")
    signature = serializers.SerializerMethodField()
    public_key = serializers.SerializerMethodField()
    entry_id = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField(), read_only=True)
    canonical = serializers.CharField(
        read_only=True,
        help_text="The exact signed bytes as a string: RFC 8785 canonical JSON of the "
        "contribution object; its UTF-8 encoding is the signed message.",
    )
    content_hash = serializers.CharField(
        read_only=True, help_text="SHA-256 of the canonical bytes (UTF-8), lowercase hex."
    )
    origin_hub = serializers.CharField(
        read_only=True,
        help_text="The hub the member submitted to (the signed hub field); another hub's id "
        "for a contribution that arrived through federation.",
    )

    class Meta:
        model = Contribution
        fields = [
            "uuid",
            "member",
            "action",
            "entry_id",
            "labels",
            "scope",
            "incident",
            "created_at",
            "received_at",
            "status",
            "key_id",
            "public_key",
            "content_hash",
            "canonical",
            "signature",
            "origin_hub",
        ]

    @extend_schema_field(
        serializers.CharField(help_text="The Ed25519 signature (64 bytes), standard base64.")
    )
    def get_signature(self, obj) -> str:
        return base64.b64encode(bytes(obj.signature)).decode()

    @extend_schema_field(
        serializers.CharField(
            help_text="The signer's raw 32-byte Ed25519 public key, standard base64 with "
            "padding (44 characters)."
        )
    )
    def get_public_key(self, obj) -> str:
        return base64.b64encode(obj.signing_key.public_key_bytes).decode()


class EntrySerializer(serializers.ModelSerializer):
    labels = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")

    class Meta:
        model = Entry
        fields = [
            "id",
            "signal_type",
            "value",
            "state",
            "review_round",
            "labels",
            "created_at",
            "updated_at",
            "state_changed_at",
        ]


class EntryDetailSerializer(EntrySerializer):
    contributions = ContributionSerializer(many=True, read_only=True)

    class Meta(EntrySerializer.Meta):
        fields = [*EntrySerializer.Meta.fields, "contributions"]
