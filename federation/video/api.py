"""``GET /api/v1/sync/frames``: the frame lists of shared vpdq entries, by value (docs/sync.md,
"Video frame lists"). Sync pages name a vpdq entry by its value; its frame list, which never
changes for that value, is fetched here once."""

import re

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from federation.errors import InvalidInput
from federation.video import selectors
from members.models import Scope
from members.permissions import HasCapability

MAX_VALUES = 100
# About 18 MB of canonical JSON at most: a page of lists stays a bounded answer.
MAX_FRAMES_PER_PAGE = 200_000
_VALUE = re.compile(r"[0-9a-fA-F]{64}")
VALUES_PATTERN = rf"^[0-9a-fA-F]{{64}}(,[0-9a-fA-F]{{64}}){{0,{MAX_VALUES - 1}}}$"


class SyncFramesView(APIView):
    """The canonical frame lists of shared vpdq entries, by value."""

    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {400: ["invalid"]}

    @extend_schema(
        operation_id="sync_frames",
        parameters=[
            OpenApiParameter(
                "values",
                str,
                required=True,
                pattern=VALUES_PATTERN,
                description=f"1 to {MAX_VALUES} vpdq values (64 hex), separated by commas.",
            )
        ],
        responses={
            200: OpenApiResponse(
                {
                    "type": "object",
                    "properties": {
                        "lists": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "value": {"type": "string"},
                                    "frame_count": {"type": "integer"},
                                    "frames": {"type": "array", "items": {"type": "array"}},
                                },
                            },
                        },
                        "deferred": {"type": "array", "items": {"type": "string"}},
                        "unknown": {"type": "array", "items": {"type": "string"}},
                    },
                },
                description="`lists` in request order until the page holds "
                f"{MAX_FRAMES_PER_PAGE} frames (at least one list); `deferred`: shared values "
                "left for another request; `unknown`: values not in the shared set.",
            )
        },
    )
    def get(self, request):
        values = _values(request.query_params.get("values"))
        page = selectors.shared_frame_lists(values=values, max_frames=MAX_FRAMES_PER_PAGE)
        body = orjson.dumps(
            {
                "lists": [
                    {"value": value, "frame_count": count, "frames": orjson.Fragment(text)}
                    for value, count, text in page.lists
                ],
                "deferred": page.deferred,
                "unknown": page.unknown,
            }
        )
        return HttpResponse(body, content_type="application/json")


def _values(raw: str | None) -> list[str]:
    parts = raw.split(",") if raw else []
    if not 1 <= len(parts) <= MAX_VALUES or not all(_VALUE.fullmatch(part) for part in parts):
        raise InvalidInput(
            f"values must be 1 to {MAX_VALUES} vpdq values (64 hexadecimal characters each), "
            "separated by commas.",
            details={"parameter": "values", "maximum": MAX_VALUES},
        )
    return list(dict.fromkeys(part.lower() for part in parts))
