"""HTTP endpoints for submitting contributions and reading entries."""

import django_filters
import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.api.parsers import BoundedJSONParser, PayloadTooLarge, body_evidence
from federation.contributions.models import Entry, SignalType
from federation.contributions.rejections import REJECTION_STATUS, contribution_request_rejected
from federation.contributions.selectors import (
    contributions_for_organisation,
    entries_visible,
    entry_with_history,
)
from federation.contributions.serializers import (
    BulkResultSerializer,
    BulkSubmissionSerializer,
    ContributionSerializer,
    EntryDetailSerializer,
    EntrySerializer,
    SubmissionSerializer,
)
from federation.contributions.services import contributions_submit
from federation.contributions.storage import CREATED, DUPLICATE, REJECTED
from federation.errors import ConcordatError, InvalidInput, NotFound
from federation.gc_pause import cycle_collection_paused
from federation.transparency.actions import Key
from members.actors import Actor
from members.models import Scope
from members.permissions import HasCapability
from members.principals import principal_for_request


def _rejection_codes() -> dict[int, list[str]]:
    """Status → the codes a contribution can be rejected with (for the schema)."""
    codes: dict[int, list[str]] = {}
    for code, status_code in REJECTION_STATUS.items():
        codes.setdefault(status_code, []).append(code)
    return codes


class ContributionListCreateView(generics.ListAPIView):
    """Submit one signed contribution (201 created, 200 when the same bytes were already stored),
    or list your organisation's contributions, newest first."""

    permission_classes = [HasCapability]
    required_capabilities = {"GET": Scope.READ, "POST": Scope.SUBMIT}
    serializer_class = ContributionSerializer
    error_codes = {"POST": _rejection_codes()}

    def get_queryset(self):
        return contributions_for_organisation(
            organisation=principal_for_request(self.request).organisation
        )

    @extend_schema(
        request=SubmissionSerializer,
        responses={201: ContributionSerializer, 200: ContributionSerializer},
    )
    def post(self, request):
        principal = principal_for_request(request)
        data = _submitted_body(request)
        if not isinstance(data, dict):
            raise _refused(
                request,
                InvalidInput("The body must be an object with contribution and signature."),
            )
        (result,) = contributions_submit(
            actor=Actor.for_principal(principal),
            items=[data],
            request_evidence=lambda: _evidence(request),
        )
        if result.status == REJECTED:
            raise _rejection(result.error)
        contribution = self.get_queryset().get(uuid=result.uuid)
        code = status.HTTP_201_CREATED if result.status == CREATED else status.HTTP_200_OK
        return Response(ContributionSerializer(contribution).data, status=code)


def _submitted_body(request):
    """The parsed body; a body refused by the parser (not JSON, a duplicate name, too large, of
    another media type) is recorded as a refused request before the error is answered."""
    try:
        return request.data
    except ParseError as exc:
        raise _refused(request, exc, code="malformed_json") from None
    except UnsupportedMediaType as exc:
        raise _refused(request, exc, code="unsupported_media_type") from None
    except PayloadTooLarge as exc:
        raise _refused(request, exc) from None
    except RequestDataTooBig:  # Django's own check of the declared length
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise _refused(request, BoundedJSONParser.too_large(limit)) from None


def _refused(request, exc: Exception, *, code: str | None = None) -> Exception:
    """Write the one ``contribution.request_rejected`` event of a refused contribution-write
    request (docs/api.md, "What is audited"); returns ``exc`` for the caller to raise."""
    contribution_request_rejected(
        actor=Actor.for_principal(principal_for_request(request)),
        code=code or exc.code,
        message=str(getattr(exc, "message", None) or getattr(exc, "detail", exc)),
        request_evidence=_evidence(request),
    )
    return exc


def _evidence(request) -> dict:
    return {Key.PATH: request.path[:200], **body_evidence(request)}


def _rejection(error: dict) -> ConcordatError:
    exc = ConcordatError(error["message"], code=error["code"], details=error["details"])
    exc.status = REJECTION_STATUS.get(error["code"], 400)
    return exc


class ContributionBulkView(APIView):
    """Submit up to ``BULK_MAX_ITEMS`` signed contributions. Each item gets its own result, in
    input order; valid items are stored even when others are rejected."""

    permission_classes = [HasCapability]
    required_capability = Scope.SUBMIT
    # Item rejections are per item in the 200 answer (results[].error), not request errors.
    error_codes = {400: ["too_many_items"]}

    @extend_schema(request=BulkSubmissionSerializer, responses={200: BulkResultSerializer})
    @cycle_collection_paused()
    def post(self, request):
        data = _submitted_body(request)
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise _refused(
                request,
                InvalidInput('The body must be {"items": [...]} with at least one item.'),
            )
        if len(items) > settings.BULK_MAX_ITEMS:
            raise _refused(
                request,
                InvalidInput(
                    f"At most {settings.BULK_MAX_ITEMS} items per request; split the batch.",
                    code="too_many_items",
                    details={"limit": settings.BULK_MAX_ITEMS, "received": len(items)},
                ),
            )
        results = contributions_submit(
            actor=Actor.for_principal(principal_for_request(request)),
            items=items,
            request_evidence=lambda: _evidence(request),
        )
        counts = {CREATED: 0, DUPLICATE: 0, REJECTED: 0}
        for result in results:
            counts[result.status] += 1
        return HttpResponse(
            _json_bytes({**counts, "results": [result.as_dict() for result in results]}),
            content_type="application/json",
        )


def _json_bytes(data: dict) -> bytes:
    """``data`` as DRF's ``JSONRenderer`` writes it (compact, UTF-8, U+2028 and U+2029 escaped),
    by orjson: the same bytes for the plain strings, integers and nulls of a bulk answer, in a
    twentieth of the time (1 µs an item with DRF's ``json.dumps`` for 10,000 results)."""
    body = orjson.dumps(data)
    if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:
        body = body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return body


class ContributionDetailView(generics.RetrieveAPIView):
    """One of your organisation's contributions, with its signed bytes."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = ContributionSerializer
    lookup_field = "uuid"

    def get_queryset(self):
        return contributions_for_organisation(
            organisation=principal_for_request(self.request).organisation
        )


class EntryFilter(django_filters.FilterSet):
    label = django_filters.CharFilter(field_name="labels__slug")
    value = django_filters.CharFilter(method="filter_value")

    class Meta:
        model = Entry
        fields = ["state", "signal_type", "value", "label"]

    def filter_value(self, queryset, name, value):
        # Entries are indexed by (signal_type, value): naming every type lets a lookup by value
        # alone probe that index once per type, where ``value = …`` alone read every entry.
        return queryset.filter(value=value, signal_type__in=SignalType.values)


class EntryListView(generics.ListAPIView):
    """Entries (one per signal) with their state and labels."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = EntrySerializer
    filterset_class = EntryFilter

    def get_queryset(self):
        return entries_visible()


class EntryDetailView(generics.RetrieveAPIView):
    """One entry with every contribution (including the signed bytes, to verify independently)."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    serializer_class = EntryDetailSerializer

    def get_object(self):
        try:
            return entry_with_history(entry_id=int(self.kwargs["pk"]))
        except Entry.DoesNotExist as exc:
            raise NotFound("No such entry.") from exc
