"""The match API (docs/matching.md): ``POST /api/v1/match`` (up to ``MATCH_MAX_SIGNALS``
signals) and ``GET /api/v1/match?type=…&value=…`` (one signal, for curl). Needs ``read``."""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from federation.errors import InvalidInput
from federation.matching import serializers as shapes
from federation.matching.index import HEX_LENGTHS, MAX_THRESHOLD
from federation.matching.services import (
    MAX_FRAMES_PER_REQUEST,
    QUALITY_MAX,
    VPDQ,
    match_answer,
    match_parameters,
    match_signal_parse,
    match_video_parameters,
    match_vpdq_parse,
)
from members.actors import Actor
from members.models import Scope
from members.permissions import HasCapability
from members.principals import principal_for_request

_CODES = [
    "invalid_signal",
    "invalid_threshold",
    "invalid_quality",
    "invalid_video_parameter",
    "too_many_items",
]


class MatchView(APIView):
    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {400: _CODES}

    @extend_schema(
        operation_id="match_one",
        parameters=[
            OpenApiParameter("type", str, enum=list(HEX_LENGTHS), required=True),
            OpenApiParameter(
                "value",
                {
                    "type": "string",
                    "pattern": shapes.hex_pattern(*sorted(set(HEX_LENGTHS.values()))),
                },
                required=True,
                description="The hash, in hex: 64 digits for pdq and sha256, 32 for md5 "
                "(a length the type does not take is 400 invalid_signal).",
            ),
            OpenApiParameter(
                "threshold",
                {"type": "integer", "minimum": 0, "maximum": MAX_THRESHOLD},
                description=f"PDQ threshold (default {settings.MATCH_DEFAULT_THRESHOLD}).",
            ),
            OpenApiParameter(
                "quality_min",
                {"type": "integer", "minimum": 0, "maximum": QUALITY_MAX},
                description="PDQ quality floor.",
            ),
        ],
        responses={200: shapes.MatchResponseSerializer},
    )
    def get(self, request):
        params = request.query_params
        signal = match_signal_parse(signal_type=params.get("type"), value=params.get("value"))
        threshold, quality_min = match_parameters(
            threshold=_integer(
                params.get("threshold"), "threshold", "invalid_threshold", MAX_THRESHOLD
            ),
            quality_min=_integer(
                params.get("quality_min"), "quality_min", "invalid_quality", QUALITY_MAX
            ),
        )
        return _answer(request, [signal], threshold, quality_min)

    @extend_schema(
        operation_id="match",
        request=shapes.MatchRequestSerializer,
        responses={200: shapes.MatchResponseSerializer},
    )
    def post(self, request):
        body = request.data
        raw = body.get("signals") if isinstance(body, dict) else None
        if not isinstance(raw, list) or not raw:
            raise InvalidInput(
                'The body must be {"signals": [{"type", "value"}, ...]} with at least one signal.'
            )
        limit = settings.MATCH_MAX_SIGNALS
        if len(raw) > limit:
            raise InvalidInput(
                f"At most {limit} signals per request; split the batch.",
                code="too_many_items",
                details={"limit": limit, "received": len(raw)},
            )
        signals = []
        frames_left = MAX_FRAMES_PER_REQUEST
        for position, item in enumerate(raw):
            if not isinstance(item, dict):
                raise InvalidInput(
                    "Each signal is an object {type, value} (vpdq: {type, frames}).",
                    code="invalid_signal",
                    details={"index": position},
                )
            try:
                if item.get("type") == VPDQ:
                    frames = item.get("frames")
                    if isinstance(frames, list) and len(frames) > frames_left:
                        raise InvalidInput(
                            f"At most {MAX_FRAMES_PER_REQUEST} vpdq frames per request, all "
                            "signals together; split the batch.",
                            code="too_many_items",
                            details={"limit": MAX_FRAMES_PER_REQUEST, "field": "frames"},
                        )
                    signal = match_vpdq_parse(frames=frames)
                    frames_left -= len(signal.frames)
                else:
                    signal = match_signal_parse(
                        signal_type=item.get("type"), value=item.get("value")
                    )
                signals.append(signal)
            except InvalidInput as exc:
                exc.details = {**(exc.details or {}), "index": position}
                raise
        threshold, quality_min = match_parameters(
            threshold=body.get("threshold"), quality_min=body.get("quality_min")
        )
        video = match_video_parameters(
            frame_quality_min=body.get("frame_quality_min"),
            query_match_min=body.get("query_match_min"),
            compared_match_min=body.get("compared_match_min"),
            include_frames=body.get("include_frames"),
        )
        return _answer(request, signals, threshold, quality_min, video)


def _answer(request, signals, threshold, quality_min, video=None) -> HttpResponse:
    """The answer rendered as JSON bytes by the service (``match_answer``), returned as it is:
    on clustered data a batch has a hundred thousand matches, which as Python dicts for the
    renderer cost more than the search."""
    body = match_answer(
        actor=Actor.for_principal(principal_for_request(request)),
        signals=signals,
        threshold=threshold,
        quality_min=quality_min,
        video=video,
    )
    return HttpResponse(body, content_type="application/json")


def _integer(raw: str | None, name: str, code: str, maximum: int) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"{name} must be an integer 0-{maximum}.",
            code=code,
            details={"min": 0, "max": maximum},
        ) from None
