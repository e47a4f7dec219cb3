"""The shapes of the match API (docs/matching.md), for the OpenAPI schema."""

from django.conf import settings
from rest_framework import serializers

from federation.matching.index import MAX_THRESHOLD
from federation.sync.serializers import ContributorSerializer


class MatchSignalSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="pdq, md5 or sha256.")
    value = serializers.CharField(help_text="The hash in hex.")


class MatchRequestSerializer(serializers.Serializer):
    signals = MatchSignalSerializer(
        many=True,
        help_text=f"1-{settings.MATCH_MAX_SIGNALS} signals: type pdq (64 hex digits), md5 (32) "
        "or sha256 (64); uppercase hex is accepted and lowercased.",
    )
    threshold = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_THRESHOLD,
        help_text=f"PDQ: the largest Hamming distance reported (default "
        f"{settings.MATCH_DEFAULT_THRESHOLD}). Ignored for md5 and sha256 (exact).",
    )
    quality_min = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=100,
        help_text="PDQ: only entries whose quality (the best among active adds) is at least "
        "this; an entry with no quality never passes a floor.",
    )


class MatchSerializer(serializers.Serializer):
    signal = MatchSignalSerializer()
    distance = serializers.IntegerField(help_text="Hamming distance (PDQ); 0 for md5, sha256.")
    state = serializers.CharField(help_text="vetted or disputed.")
    labels = serializers.ListField(child=serializers.CharField())
    contributors = ContributorSerializer(many=True)
    quality = serializers.IntegerField(allow_null=True)


class MatchResultSerializer(serializers.Serializer):
    signal = MatchSignalSerializer(help_text="The signal you sent, normalised.")
    matches = MatchSerializer(many=True, help_text="Nearest first.")


class MatchResponseSerializer(serializers.Serializer):
    threshold = serializers.IntegerField()
    quality_min = serializers.IntegerField(allow_null=True)
    results = MatchResultSerializer(many=True, help_text="One per signal sent, in order.")
