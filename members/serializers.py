"""Input and output shapes of the member management API."""

import base64

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.models import ApiCredential, Membership, Role, Scope, SigningKey
from members.validators import validate_display_name


class SigningKeySerializer(serializers.ModelSerializer):
    public_key = serializers.SerializerMethodField()
    member = serializers.CharField(source="organisation.slug", read_only=True)

    class Meta:
        model = SigningKey
        fields = [
            "key_id",
            "member",
            "public_key",
            "label",
            "not_before",
            "revoked_at",
            "revoke_reason",
            "created_at",
        ]

    @extend_schema_field(serializers.CharField())
    def get_public_key(self, obj) -> str:
        return base64.b64encode(obj.public_key_bytes).decode()


class SigningKeyRegisterSerializer(serializers.Serializer):
    public_key = serializers.CharField(
        max_length=100, help_text="Raw 32-byte Ed25519 public key, as 64 hex characters or base64."
    )
    label = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_display_name],
    )
    not_before = serializers.DateTimeField(required=False, allow_null=True, default=None)


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
        child=serializers.ChoiceField(choices=Scope.choices), max_length=6
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
