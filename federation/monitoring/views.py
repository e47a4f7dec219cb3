"""The monitoring endpoints: ``/metrics`` (Prometheus text format) and the probes
``/health/live`` and ``/health/ready``. Not part of the versioned API (left out of the OpenAPI
schema); errors still have the API's JSON shape."""

import ipaddress

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client.exposition import choose_encoder
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.errors import Forbidden
from federation.monitoring.probes import readiness
from federation.monitoring.registry import scrape_registry
from members.models import Scope
from members.permissions import HasCapability


def client_in_allowed_network(request) -> bool:
    """Whether the connecting address is in ``METRICS_ALLOWED_NETWORKS``. Only ``REMOTE_ADDR``
    counts, never ``X-Forwarded-For``, which any client can write (docs/operations.md says what
    this means behind a reverse proxy)."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


class MetricsAccess(BasePermission):
    """A client in an allowed network, or a principal with the ``metrics`` capability (a token
    with the ``metrics`` scope of a consortium admin, or an admin's session)."""

    message = "Your role or token scopes do not allow this."

    def has_permission(self, request, view) -> bool:
        if client_in_allowed_network(request):
            return True
        if not HasCapability().has_permission(request, view):
            return False
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            # /metrics is exempt from the HTTPS redirect for scrapers on the private network;
            # a credential, though, is only taken over HTTPS (as the API's are).
            raise Forbidden(
                "Metrics are served to a credential over HTTPS only; this one was sent in the "
                "clear: revoke it and issue a new one.",
                code="https_required",
            )
        return True


class MetricsView(APIView):
    """Every metric, in the Prometheus text exposition format (docs/operations.md, "Metrics")."""

    permission_classes = [MetricsAccess]
    required_capability = Scope.METRICS
    throttle_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request):
        # The text format 0.0.4 unless the scraper asks for OpenMetrics (its Accept header).
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return HttpResponse(encode(scrape_registry()), content_type=content_type)


class LiveView(APIView):
    """200 while the process answers requests; checks nothing else."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request):
        return Response({"status": "ok"})


class ReadyView(APIView):
    """200 when the database and the broker answer; 503 ``not_ready`` naming which does not."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request):
        checks = readiness()
        if checks.ready:
            return Response({"status": "ready", "checks": checks.as_dict()})
        failing = [name for name, state in checks.as_dict().items() if state != "ok"]
        return Response(
            {
                "error": {
                    "code": "not_ready",
                    "message": f"This process cannot serve: {' and '.join(failing)} unavailable.",
                    "details": checks.as_dict(),
                }
            },
            status=503,
        )
