"""The shapes of the sync API, for the OpenAPI schema and the docs (docs/sync.md)."""

from rest_framework import serializers

from federation.contributions.models import SignalType


class SignalSerializer(serializers.Serializer):
    type = serializers.CharField(help_text=f"One of {', '.join(SignalType.values)}.")
    value = serializers.CharField()


class ContributorSerializer(serializers.Serializer):
    member = serializers.CharField(help_text="The contributing organisation's slug.")
    hub = serializers.CharField(help_text="The hub the contribution was made on.")


class ChangeSerializer(serializers.Serializer):
    """An ``upsert`` (the entry as it stands: store or replace it) or a ``remove`` (drop the
    signal if you hold it). An ``end`` item only ends an export."""

    op = serializers.ChoiceField(choices=["upsert", "remove"])
    signal = SignalSerializer()
    state = serializers.CharField(required=False, help_text="upsert: vetted or disputed")
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    contributors = ContributorSerializer(many=True, required=False)
    incidents = serializers.ListField(child=serializers.UUIDField(), required=False)
    quality = serializers.IntegerField(allow_null=True, required=False)
    first_seen = serializers.DateTimeField(required=False, help_text="upsert")
    last_changed = serializers.DateTimeField()
    reason = serializers.CharField(
        required=False,
        help_text="remove: why the entry left the shared set (retracted, rejected, pending)",
    )


class ChangesPageSerializer(serializers.Serializer):
    changes = ChangeSerializer(many=True)
    next = serializers.CharField(help_text="The cursor to pass as `after` next time.")
    more = serializers.BooleanField(help_text="True when more changes are already waiting.")
