"""The push endpoint's request and answer, typed for the OpenAPI schema (docs/federation.md)."""

from rest_framework import serializers


class SignedBatchSerializer(serializers.Serializer):
    """``{"batch": <concordat.batch>, "signature": <the sender hub's signature>}``. The batch is
    checked by ``federation.propagation.wire.parse_batch``, not by this serializer: it documents
    the shape."""

    batch = serializers.DictField(
        help_text='The concordat.batch object: {"kind": "concordat.batch", "v": 1, "from", "to", '
        '"id", "sent_at", "items": [at most 500], "feed"?}.'
    )
    signature = serializers.CharField(
        help_text="Ed25519 signature by the sending hub's pinned key over the RFC 8785 bytes of "
        "batch, in padded standard base64 (88 characters)."
    )


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in batch.items.")
    digest = serializers.CharField(
        allow_null=True,
        help_text="SHA-256 (hex) of the item's RFC 8785 bytes; null when it cannot be computed.",
    )
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    code = serializers.CharField(required=False, help_text="rejected only (docs/federation.md).")
    message = serializers.CharField(required=False, help_text="rejected only.")


class BatchResultSerializer(serializers.Serializer):
    batch = serializers.UUIDField(help_text="The batch's id, as sent.")
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchItemResultSerializer(many=True)
