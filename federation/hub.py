"""The public description of this hub: who it is and the rules partners must follow."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.hubkey import hub_public_key_b64
from federation.signing import CONTRIBUTION_KIND, CONTRIBUTION_VERSION


class HubView(APIView):
    """Public: the hub id partners put in signed contributions, its key, and the limits."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=inline_serializer(
            "Hub",
            {
                "hub_id": serializers.CharField(),
                "public_key": serializers.CharField(),
                "contribution_kind": serializers.CharField(),
                "contribution_version": serializers.IntegerField(),
                "clock_skew_seconds": serializers.IntegerField(),
                "max_age_seconds": serializers.IntegerField(),
                "bulk_max_items": serializers.IntegerField(),
                "max_body_bytes": serializers.IntegerField(),
            },
        )
    )
    def get(self, request):
        return Response(
            {
                "hub_id": settings.HUB_ID,
                "public_key": hub_public_key_b64(),
                "contribution_kind": CONTRIBUTION_KIND,
                "contribution_version": CONTRIBUTION_VERSION,
                "clock_skew_seconds": settings.CONTRIBUTION_CLOCK_SKEW_SECONDS,
                "max_age_seconds": settings.CONTRIBUTION_MAX_AGE_SECONDS,
                "bulk_max_items": settings.BULK_MAX_ITEMS,
                "max_body_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
            }
        )
