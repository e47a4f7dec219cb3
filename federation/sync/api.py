"""The sync API (docs/sync.md): ``GET /api/v1/sync/changes`` (delta by cursor) and
``GET /api/v1/sync/export`` (the shared set as gzip NDJSON, streamed).

Both need the ``read`` capability, which every member role has; staff with ``read`` may sync too.
"""

import uuid
import zlib
from collections.abc import Iterable, Iterator

import orjson
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from federation.contributions.models import Label, SignalType
from federation.errors import InvalidInput
from federation.sync.cursors import cursor_for, cursor_of
from federation.sync.export import shared_set_lines
from federation.sync.serializers import ChangesPageSerializer
from federation.sync.stream import changes_after
from members.models import Scope
from members.permissions import HasCapability

_FILTERS = [
    OpenApiParameter(
        "signal_type",
        {"type": "string", "enum": ["", *SignalType.values]},
        description="Only this type (empty: every type).",
    ),
    OpenApiParameter("label", str, description="Only entries carrying this label (a slug)."),
    OpenApiParameter(
        "incident",
        {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]},
        description="Only entries tagged with it (an incident's UUID; empty: any).",
    ),
]


class SyncChangesView(APIView):
    """Changes to the shared set after a cursor, oldest first."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {400: ["invalid", "invalid_cursor", "unknown_label"], 410: ["stale_cursor"]}

    @extend_schema(
        operation_id="sync_changes",
        parameters=[
            OpenApiParameter(
                "after",
                str,
                description="The `next` cursor of your last page (or an export's end line); "
                "leave out to read the stream from its start.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": settings.SYNC_PAGE_SIZE_MAX},
                description=f"Changes per page: default {settings.SYNC_PAGE_SIZE}, "
                f"at most {settings.SYNC_PAGE_SIZE_MAX}.",
            ),
            *_FILTERS,
        ],
        responses={200: ChangesPageSerializer},
    )
    def get(self, request):
        params = request.query_params
        raw_after = params.get("after")
        cursor = cursor_of(raw_after) if raw_after else None
        page = changes_after(
            after=cursor.position if cursor else None,
            horizon=cursor.horizon if cursor else 0,
            limit=_limit(params.get("limit")),
            signal_type=_signal_type(params.get("signal_type")),
            label=_label(params.get("label")),
            incident=_incident(params.get("incident")),
        )
        # The changes arrive as ready JSON documents (built by the database): join, not re-encode.
        body = b"".join(
            [
                b'{"changes":[',
                b",".join(page.items),
                b'],"next":',
                orjson.dumps(cursor_for(page.position, horizon=page.horizon)),
                b',"more":',
                b"true" if page.more else b"false",
                b"}",
            ]
        )
        return HttpResponse(body, content_type="application/json")


class SyncExportView(APIView):
    """The whole shared set, one consistent snapshot, as gzip-compressed NDJSON."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ

    @extend_schema(
        operation_id="sync_export",
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="Content-Encoding gzip. One upsert per line (the changes' shape), "
                'then {"op": "end", "count": n, "cursor": "…"}: continue with the delta API '
                "from that cursor. No end line means the export was cut short.",
            )
        },
    )
    def get(self, request):
        response = StreamingHttpResponse(
            _gzip(shared_set_lines()), content_type="application/x-ndjson"
        )
        response["Content-Encoding"] = "gzip"
        response["Content-Disposition"] = 'attachment; filename="shared-set.ndjson.gz"'
        response["Cache-Control"] = "no-store"
        return response


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(settings.SYNC_EXPORT_GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        compressed = compressor.compress(chunk)
        if compressed:
            yield compressed
    yield compressor.flush()


def _limit(raw: str | None) -> int:
    if raw in (None, ""):
        return settings.SYNC_PAGE_SIZE
    maximum = settings.SYNC_PAGE_SIZE_MAX
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {maximum}.",
            details={"parameter": "limit", "maximum": maximum},
        )
    return int(raw)


def _signal_type(raw: str | None) -> str | None:
    if raw in (None, ""):
        return None
    if raw not in SignalType.values:
        raise InvalidInput(
            f"signal_type must be one of {SignalType.values}.", details={"parameter": "signal_type"}
        )
    return raw


def _label(raw: str | None) -> str | None:
    if raw in (None, ""):
        return None
    if not Label.objects.filter(slug=raw).exists():
        raise InvalidInput(
            "No such label in the hub's taxonomy.",
            code="unknown_label",
            details={"parameter": "label"},
        )
    return raw


def _incident(raw: str | None) -> str | None:
    if raw in (None, ""):
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidInput(
            "incident must be an incident's UUID.", details={"parameter": "incident"}
        ) from None
