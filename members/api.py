"""HTTP endpoints with which member admins manage their organisation's keys, credentials and roles."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.errors import InvalidInput, NotFound
from members.actors import Actor
from members.models import ApiCredential, Membership, Scope, SigningKey
from members.permissions import HasCapability
from members.principals import principal_for_request
from members.serializers import (
    CredentialCreateSerializer,
    CredentialSerializer,
    IssuedCredentialSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    SigningKeyRegisterRequestSerializer,
    SigningKeyRegisterSerializer,
    SigningKeyRevokeSerializer,
    SigningKeySerializer,
)
from members.services import (
    credential_create,
    credential_revoke,
    membership_set,
    signing_key_register,
    signing_key_revoke,
)


class OrganisationScopedMixin:
    """Everything here is limited to the requesting principal's own organisation."""

    permission_classes = [HasCapability]
    required_capability = Scope.MANAGE

    @property
    def principal(self):
        return principal_for_request(self.request)

    @property
    def actor(self) -> Actor:
        return Actor.for_principal(self.principal)

    def get_own(self, queryset, **lookup):
        obj = queryset.filter(organisation=self.principal.organisation, **lookup).first()
        if obj is None:
            raise NotFound("Not found in your organisation.")
        return obj


class SigningKeyListCreateView(OrganisationScopedMixin, generics.ListAPIView):
    """Your organisation's signing keys; POST registers a new public key with its signed
    registration (proof of possession, docs/signing.md)."""

    serializer_class = SigningKeySerializer
    error_codes = {"POST": {400: ["invalid_key"], 409: ["key_exists"]}}

    def get_queryset(self):
        return SigningKey.objects.filter(organisation=self.principal.organisation).select_related(
            "organisation"
        )

    @extend_schema(
        request=SigningKeyRegisterRequestSerializer, responses={201: SigningKeySerializer}
    )
    def post(self, request):
        data = SigningKeyRegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = signing_key_register(
            organisation=self.principal.organisation,
            registration=data.validated_data["registration"],
            signature=data.validated_data["signature"],
            label=data.validated_data["label"],
            not_before=data.validated_data["not_before"],
            actor=self.actor,
        )
        return Response(SigningKeySerializer(key).data, status=status.HTTP_201_CREATED)


class SigningKeyRevokeView(OrganisationScopedMixin, APIView):
    """Revoke a signing key, with a reason and the time from which it is untrusted."""

    error_codes = {400: ["reason_required"], 409: ["key_revoked"]}

    @extend_schema(request=SigningKeyRevokeSerializer, responses={200: SigningKeySerializer})
    def post(self, request, key_id: str):
        key = self.get_own(SigningKey.objects.select_related("organisation"), key_id=key_id)
        data = SigningKeyRevokeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = signing_key_revoke(
            key=key,
            reason=data.validated_data["reason"],
            effective_at=data.validated_data["effective_at"],
            actor=self.actor,
        )
        return Response(SigningKeySerializer(key).data)


class CredentialListCreateView(OrganisationScopedMixin, generics.ListAPIView):
    """Your organisation's API credentials; POST issues one (the token is shown once)."""

    serializer_class = CredentialSerializer
    error_codes = {
        "POST": {400: ["unknown_holder", "scope_not_allowed"], 403: ["scope_exceeds_issuer"]}
    }

    def get_queryset(self):
        return ApiCredential.objects.filter(
            organisation=self.principal.organisation
        ).select_related("holder")

    @extend_schema(request=CredentialCreateSerializer, responses={201: IssuedCredentialSerializer})
    def post(self, request):
        data = CredentialCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        holder = request.user
        if data.validated_data.get("holder"):
            membership = (
                Membership.objects.select_related("user")
                .filter(
                    organisation=self.principal.organisation,
                    user__username=data.validated_data["holder"],
                )
                .first()
            )
            if membership is None:
                raise InvalidInput(
                    "holder must be a user of your organisation.", code="unknown_holder"
                )
            holder = membership.user
        issued = credential_create(
            holder=holder,
            name=data.validated_data["name"],
            scopes=data.validated_data["scopes"],
            expires_at=data.validated_data["expires_at"],
            actor=self.actor,
            issuer_capabilities=self.principal.capabilities,
        )
        body = CredentialSerializer(issued.credential).data
        body["token"] = issued.token
        # The body holds a new secret: no cache (browser, proxy) may keep a copy.
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class CredentialRevokeView(OrganisationScopedMixin, APIView):
    """Revoke an API credential at once."""

    error_codes = {409: ["credential_revoked"]}

    @extend_schema(request=None, responses={200: CredentialSerializer})
    def post(self, request, pk: int):
        credential = self.get_own(
            ApiCredential.objects.select_related("organisation", "holder"), pk=pk
        )
        credential = credential_revoke(credential=credential, actor=self.actor)
        return Response(CredentialSerializer(credential).data)


class MembershipListView(OrganisationScopedMixin, generics.ListAPIView):
    """Users of your organisation and their roles."""

    serializer_class = MembershipSerializer

    def get_queryset(self):
        return Membership.objects.filter(organisation=self.principal.organisation).select_related(
            "user", "organisation"
        )


class MembershipRoleView(OrganisationScopedMixin, APIView):
    """Change a user's role in your organisation."""

    error_codes = {409: ["staff_user", "other_organisation"]}
    patch_is_partial = False  # role is required (federation/api/schema.py)

    @extend_schema(request=MembershipRoleSerializer, responses={200: MembershipSerializer})
    def patch(self, request, pk: int):
        membership = self.get_own(Membership.objects.select_related("user", "organisation"), pk=pk)
        data = MembershipRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_set(
            user=membership.user,
            organisation=membership.organisation,
            role=data.validated_data["role"],
            actor=self.actor,
        )
        return Response(MembershipSerializer(membership).data)
