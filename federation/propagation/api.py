"""The federation endpoints: ``POST /api/v1/federation/batches``, which receives pushed batches,
and ``GET /api/v1/federation/feed``, a peer's pull feed (its pages are built by
``federation.propagation.feed``, which a puller's worker imports without the API around it).

Both are peer-authenticated (``cp_`` tokens, federation/propagation/authentication.py) and
throttled per peer. A pushed batch is bounded by ``settings.FEDERATION_MAX_BODY_BYTES`` and goes
to ``federation.receiving.receive.batch_receive``, exactly as a pulled page does. Every refusal of
the whole request is audited ``federation.batch_refused`` (a request refused for its credential
only while the sender's address is within its rate, so that junk cannot flood the log).
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.api.parsers import BoundedJSONParser, PayloadTooLarge, body_evidence
from federation.errors import ConcordatError, InvalidInput
from federation.gc_pause import cycle_collection_paused
from federation.propagation.authentication import (
    IsActivePeer,
    PeerAuthentication,
    PeerRateThrottle,
    peer_of_request,
)
from federation.propagation.feed import HORIZON_HEADER, MAX_CURSOR, feed_page
from federation.propagation.posting import ROOTS_HEADER
from federation.propagation.serializers import BatchResultSerializer, SignedBatchSerializer
from federation.propagation.wire import MAX_BATCH_ITEMS
from federation.receiving.envelope import batch_refused_record, claimed_sender
from federation.receiving.items import ITEM_CODES
from federation.receiving.receive import batch_receive
from federation.transparency.actions import Key
from members.actors import Actor


class FederationBodyParser(BoundedJSONParser):
    """JSON bodies of at most ``FEDERATION_MAX_BODY_BYTES`` (8 MiB by default)."""

    def body_limit(self) -> int:
        return min(settings.FEDERATION_MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class FederationBatchView(APIView):
    """Receive a signed batch of items from a peer hub. The whole batch is refused (4xx) when its
    envelope fails a check; otherwise the answer is 200 with one result per item (a bad item is
    rejected alone, the others are applied)."""

    authentication_classes = [PeerAuthentication]
    permission_classes = [IsActivePeer]
    throttle_classes = [PeerRateThrottle]
    parser_classes = [FederationBodyParser]
    error_codes = {
        400: ["too_many_items", "wrong_receiver"],
        403: ["peer_suspended", "wrong_sender", "bad_batch_signature"],
    }

    def initial(self, request, *args, **kwargs):
        try:
            super().initial(request, *args, **kwargs)
        except (exceptions.AuthenticationFailed, exceptions.NotAuthenticated) as exc:
            self._refused(request, exc, code=_code(exc), authenticated=False)
            raise
        except ConcordatError as exc:  # a suspended peer
            self._refused(request, exc, code=exc.code, authenticated=True)
            raise

    @extend_schema(
        operation_id="federation_batch_receive",
        request=SignedBatchSerializer,
        responses={200: BatchResultSerializer},
        description="Per-item rejection codes (in results[].code): "
        + "; ".join(f"`{code}`: {text}" for code, text in ITEM_CODES.items()),
    )
    @cycle_collection_paused()
    def post(self, request):
        peer = peer_of_request(request)
        try:
            body = request.data
        except ParseError as exc:
            raise self._refused(request, exc, code="malformed_json") from None
        except UnsupportedMediaType as exc:
            raise self._refused(request, exc, code="unsupported_media_type") from None
        except PayloadTooLarge as exc:
            raise self._refused(request, exc, code=exc.code) from None
        except RequestDataTooBig:
            limit = FederationBodyParser().body_limit()
            raise self._refused(
                request, BoundedJSONParser.too_large(limit), code="payload_too_large"
            ) from None
        result = batch_receive(
            peer=peer, body=body, via="push", evidence=lambda: _evidence(request)
        )
        return Response(result.as_response(), headers={ROOTS_HEADER: "1"})

    def _refused(self, request, exc: Exception, *, code: str, authenticated: bool = True):
        """Audit a request refused before ``batch_receive`` saw it; returns ``exc``."""
        peer = peer_of_request(request) if authenticated else None
        if peer is None:
            # Unauthenticated: audited only within the address's rate.
            if not PeerRateThrottle().allow_request(request, self):
                return exc
            claimed = ""
            try:
                claimed = claimed_sender(request.data)
            except Exception:  # an unreadable body is evidence enough by its digest
                claimed = ""
            actor = Actor.system("federation")
        else:
            claimed = peer.hub_id
            actor = Actor.peer(peer.hub_id, peer.name)
        batch_refused_record(
            actor=actor,
            claimed_hub=claimed,
            batch_id=None,
            code=code,
            message=str(getattr(exc, "message", None) or getattr(exc, "detail", exc)),
            request_evidence=_evidence(request),
        )
        return exc


def _code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.NotAuthenticated):
        return "not_authenticated"
    return "authentication_failed"


def _evidence(request) -> dict:
    return {Key.PATH: request.path[:200], **body_evidence(request)}


def _int(value: str | None, *, name: str, default: int, minimum: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if not minimum <= number <= maximum:
        raise InvalidInput(
            f"{name} must be an integer, {minimum} to {maximum}.", details={"field": name}
        )
    return number


class FederationFeedView(APIView):
    """A peer's pull feed: a hub-signed batch of what it is owed after a stream position."""

    authentication_classes = [PeerAuthentication]
    permission_classes = [IsActivePeer]
    throttle_classes = [PeerRateThrottle]
    error_codes = {400: ["invalid"], 403: ["peer_suspended"], 410: ["stale_cursor"]}

    @extend_schema(
        operation_id="federation_feed",
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
                description="The feed.next of your last page; 0 (or none) to start; at most 2^53 - 1.",
            ),
            OpenApiParameter(
                "horizon",
                {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
                description="The Concordat-Feed-Horizon of your last page (0 or none: unknown, "
                "stale below the compaction horizon); ignored with after 0.",
            ),
            OpenApiParameter(
                HORIZON_HEADER,
                {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
                location=OpenApiParameter.HEADER,
                response=[200],
                description="The horizon to send back (as horizon) with your next cursors.",
            ),
            OpenApiParameter(
                ROOTS_HEADER,
                {"type": "string"},
                location=OpenApiParameter.HEADER,
                description="1: you read attestations under a root (docs/federation.md, "
                '"Attestations under one root"); this hub\'s attestations on the page then '
                "come under roots, and the answer carries the same header. Any other value "
                "is ignored, as if the header were absent (room for later versions).",
            ),
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.FEDERATION_FEED_PAGE_SIZE_MAX,
                },
                description=f"Changes per page: default {settings.FEDERATION_FEED_PAGE_SIZE}, "
                f"at most {settings.FEDERATION_FEED_PAGE_SIZE_MAX} (and at most "
                f"{MAX_BATCH_ITEMS} items).",
            ),
        ],
        responses={200: SignedBatchSerializer},
    )
    def get(self, request):
        params = request.query_params
        after = _int(params.get("after"), name="after", default=0, minimum=0, maximum=MAX_CURSOR)
        limit = _int(
            params.get("limit"),
            name="limit",
            default=settings.FEDERATION_FEED_PAGE_SIZE,
            minimum=1,
            maximum=settings.FEDERATION_FEED_PAGE_SIZE_MAX,
        )
        horizon = _int(
            params.get("horizon"), name="horizon", default=0, minimum=0, maximum=MAX_CURSOR
        )
        # A puller that reads attestations under a root asks for them; this hub's setting can
        # still say no (docs/federation.md, "The pull feed").
        roots = settings.FEDERATION_ATTESTATION_ROOTS and request.headers.get(ROOTS_HEADER) == "1"
        page = feed_page(
            peer=peer_of_request(request), after=after, limit=limit, horizon=horizon, roots=roots
        )
        response = HttpResponse(page.body, content_type="application/json")
        response[HORIZON_HEADER] = str(page.horizon)
        if roots:
            response[ROOTS_HEADER] = "1"
        return response
