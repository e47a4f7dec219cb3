"""The shapes of the match API (docs/matching.md), for the OpenAPI schema."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from federation.matching.index import HEX_LENGTHS, MAX_THRESHOLD
from federation.sync.serializers import ContributorSerializer


class MatchSignalSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="pdq, md5 or sha256.")
    value = serializers.CharField(help_text="The hash in hex.")


def hex_pattern(*lengths: int) -> str:
    """A value of one of these lengths in hex, either case; the hub strips surrounding space."""
    return r"^\s*(" + "|".join(f"[0-9a-fA-F]{{{n}}}" for n in lengths) + r")\s*$"


# One object schema per signal type, so a value's length goes with its type.
_SIGNAL_ONE_OF = {
    "oneOf": [
        {
            "type": "object",
            "title": signal_type,
            "required": ["type", "value"],
            "properties": {
                "type": {"type": "string", "enum": [signal_type]},
                "value": {"type": "string", "pattern": hex_pattern(length)},
            },
        }
        for signal_type, length in HEX_LENGTHS.items()
    ]
}


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": settings.MATCH_MAX_SIGNALS,
        "items": _SIGNAL_ONE_OF,
    }
)
class MatchSignalsField(serializers.ListField):
    """The ``signals`` of a match request (schema only: the view parses the body itself)."""


class MatchRequestSerializer(serializers.Serializer):
    signals = MatchSignalsField(
        help_text=f"1-{settings.MATCH_MAX_SIGNALS} signals: type pdq (64 hex digits), md5 (32) "
        "or sha256 (64); uppercase hex is accepted and lowercased.",
    )
    threshold = serializers.IntegerField(
        required=False,
        allow_null=True,
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
