"""The shapes of the private lookup API (docs/private-lookup.md), for the OpenAPI schema."""

from django.conf import settings
from rest_framework import serializers


class LookupKeySerializer(serializers.Serializer):
    key_id = serializers.CharField(help_text="Hex of the first 16 bytes of SHA-256(public_key).")
    public_key = serializers.CharField(help_text="Base64 of the 32-byte ristretto255 element.")
    created_at = serializers.DateTimeField()
    retired_at = serializers.DateTimeField(allow_null=True)


class LookupKeysSerializer(serializers.Serializer):
    suite = serializers.CharField(help_text="ristretto255-SHA512 (RFC 9497, VOPRF mode 0x01).")
    input_format = serializers.CharField()
    current = LookupKeySerializer()
    history = LookupKeySerializer(many=True, help_text="Every key, oldest first.")


class LookupTableSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    public_key = serializers.CharField()
    position = serializers.IntegerField(help_text="Pass as since= to the changes endpoint.")
    tag_bytes = serializers.IntegerField(help_text="Bytes of each PRF output kept (8).")
    count = serializers.IntegerField()
    tags = serializers.DictField(
        child=serializers.CharField(),
        help_text="Per state (vetted, disputed): base64 of the sorted, concatenated tags.",
    )


class LookupChangeSerializer(serializers.Serializer):
    tag = serializers.CharField(help_text="The tag in hex.")
    state = serializers.CharField(help_text="vetted, disputed or removed.")


class LookupChangesSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    since = serializers.IntegerField()
    position = serializers.IntegerField()
    more = serializers.BooleanField()
    changes = LookupChangeSerializer(many=True)


class LookupEvaluateRequestSerializer(serializers.Serializer):
    key_id = serializers.CharField(help_text="The key the client blinded for (from the table).")
    blinded = serializers.ListField(
        child=serializers.CharField(),
        help_text=f"1-{settings.LOOKUP_BATCH_MAX} base64 ristretto255 elements.",
    )


class LookupEvaluateResponseSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    evaluated = serializers.ListField(child=serializers.CharField())
    proof = serializers.CharField(help_text="Base64 of c || s (64 bytes): one batched DLEQ proof.")
