"""Input and output shapes of the contribution and entry API."""

import base64

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from federation.contributions.models import Contribution, Entry


class SubmissionSerializer(serializers.Serializer):
    """One signed contribution as submitted (docs/signing.md). The object is checked by the
    signing module, field by field, after this outer shape."""

    contribution = serializers.JSONField(help_text="The contribution object that was signed.")
    signature = serializers.CharField(
        help_text="Ed25519 signature over the canonical bytes, base64."
    )


class BulkSubmissionSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.JSONField(), allow_empty=False)


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    uuid = serializers.CharField(allow_null=True)
    entry_id = serializers.IntegerField(required=False)
    error = serializers.DictField(required=False)


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = ItemResultSerializer(many=True)


class ContributionSerializer(serializers.ModelSerializer):
    member = serializers.CharField(source="organisation.slug")
    key_id = serializers.CharField(source="signing_key.key_id")
    signature = serializers.SerializerMethodField()
    public_key = serializers.SerializerMethodField()
    entry_id = serializers.IntegerField()

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

    @extend_schema_field(serializers.CharField())
    def get_signature(self, obj) -> str:
        return base64.b64encode(bytes(obj.signature)).decode()

    @extend_schema_field(serializers.CharField())
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
