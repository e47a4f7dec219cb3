"""Input and output shapes of the member management API."""

import base64
import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.models import ApiCredential, Membership, Role, Scope, SigningKey
from members.validators import validate_display_name


class SigningKeySerializer(serializers.ModelSerializer):
    public_key = serializers.SerializerMethodField()
    member = serializers.CharField(source="organisation.slug", read_only=True)
    hub = serializers.CharField(source="organisation.hub", read_only=True)
    registration = serializers.SerializerMethodField(
        help_text="The signed registration object (proof of possession) as registered; null for "
        "keys registered before proofs were required."
    )
    registration_signature = serializers.SerializerMethodField()

    class Meta:
        model = SigningKey
        fields = [
            "key_id",
            "hub",
            "member",
            "public_key",
            "label",
            "not_before",
            "revoked_at",
            "revoke_reason",
            "created_at",
            "registration",
            "registration_signature",
        ]

    @extend_schema_field(serializers.CharField())
    def get_public_key(self, obj) -> str:
        return base64.b64encode(obj.public_key_bytes).decode()

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_registration(self, obj):
        return json.loads(obj.registration) if obj.registration else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_registration_signature(self, obj) -> str | None:
        signature = bytes(obj.registration_signature or b"")
        return base64.b64encode(signature).decode() if signature else None


class SigningKeyRegisterSerializer(serializers.Serializer):
    registration = serializers.JSONField(
        required=False,
        default=None,
        help_text='The key registration object ({"kind": "concordat.key", "v": 1, "hub", '
        '"member", "key_id", "public_key", "created_at"}, docs/signing.md).',
    )
    signature = serializers.CharField(
        max_length=200,
        required=False,
        default=None,
        allow_blank=True,  # refused by the proof check, which records the attempt
        trim_whitespace=False,
        help_text="The registered key's own Ed25519 signature over the registration's RFC 8785 "
        "bytes, standard padded base64 (proof of possession).",
    )
    label = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_display_name],
    )
    not_before = serializers.DateTimeField(required=False, allow_null=True, default=None)


class SigningKeyRegisterRequestSerializer(SigningKeyRegisterSerializer):
    """What the schema documents for ``POST /api/v1/keys/``: ``registration`` and ``signature``
    are required. (The view reads the body with ``SigningKeyRegisterSerializer``, which lets them
    be missing so that the proof check refuses and audits the attempt: ``400``.)"""

    registration = serializers.DictField(
        help_text=SigningKeyRegisterSerializer._declared_fields["registration"].help_text
    )
    signature = serializers.CharField(
        max_length=200,
        trim_whitespace=False,
        help_text=SigningKeyRegisterSerializer._declared_fields["signature"].help_text,
    )


class SigningKeyRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)
    effective_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the key stopped being trustworthy (default: now). Signatures made since are refused.",
    )


class CredentialSerializer(serializers.ModelSerializer):
    holder = serializers.CharField(source="holder.username", read_only=True)
    token_prefix = serializers.SerializerMethodField()

    class Meta:
        model = ApiCredential
        fields = [
            "id",
            "name",
            "holder",
            "token_prefix",
            "scopes",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]

    @extend_schema_field(serializers.CharField())
    def get_token_prefix(self, obj) -> str:
        return f"cc_{obj.prefix}_"


class CredentialCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, validators=[validate_display_name])
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), max_length=len(Scope.choices)
    )
    holder = serializers.CharField(
        max_length=150,
        required=False,
        help_text="Username of a user of your organisation (default: you).",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class IssuedCredentialSerializer(CredentialSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "token"]


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    member = serializers.CharField(source="organisation.slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "member", "role", "created_at"]
        read_only_fields = ["id", "username", "member", "created_at"]


class MembershipRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
