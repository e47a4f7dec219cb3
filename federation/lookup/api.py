"""The private lookup API, mounted at /api/v1/lookup/ (docs/private-lookup.md). Every endpoint
needs the ``lookup`` capability: a lookup-only credential, or any member's ``read``."""

import base64

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.errors import Forbidden, InvalidInput
from federation.lookup import serializers as shapes
from federation.lookup import voprf
from federation.lookup.keys import current_key
from federation.lookup.models import LookupKey
from federation.lookup.services import lookup_elements_parse, lookup_evaluate
from federation.lookup.table import lookup_table, lookup_table_changes
from members.models import Scope
from members.permissions import HasCapability
from members.principals import principal_for_request

INPUT_FORMAT = "concordat-lookup-v1:<md5|sha256>:<lowercase hex>"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_document(row: LookupKey) -> dict:
    return {
        "key_id": row.key_id,
        "public_key": _b64(bytes(row.public_key)),
        "created_at": row.created_at,
        "retired_at": row.retired_at,
    }


class LookupKeyView(APIView):
    """The current OPRF key and every earlier one (each also a ``lookup.key_created`` event)."""

    permission_classes = [HasCapability]
    required_capability = Scope.LOOKUP
    error_codes = {503: ["lookup_unavailable"]}

    @extend_schema(operation_id="lookup_key", responses={200: shapes.LookupKeysSerializer})
    def get(self, request):
        key = current_key()
        history = list(LookupKey.objects.order_by("created_at", "pk"))
        current = next(row for row in history if row.key_id == key.key_id)
        return Response(
            {
                "suite": voprf.SUITE,
                "input_format": INPUT_FORMAT,
                "current": _key_document(current),
                "history": [_key_document(row) for row in history],
            }
        )


class LookupTableView(APIView):
    """The whole lookup table under the current key."""

    permission_classes = [HasCapability]
    required_capability = Scope.LOOKUP
    error_codes = {503: ["lookup_unavailable", "lookup_table_building"]}

    @extend_schema(operation_id="lookup_table", responses={200: shapes.LookupTableSerializer})
    def get(self, request):
        table = lookup_table()
        width = settings.LOOKUP_TAG_BYTES
        return Response(
            {
                "key_id": table.key.key_id,
                "public_key": _b64(table.key.public_key),
                "position": table.position,
                "tag_bytes": width,
                "count": sum(len(tags) // width for tags in table.tags.values()),
                "tags": {state: _b64(tags) for state, tags in table.tags.items()},
            }
        )


class LookupTableChangesView(APIView):
    """The table's changes after a position (``since``) under a key (``key_id``)."""

    permission_classes = [HasCapability]
    required_capability = Scope.LOOKUP
    error_codes = {
        400: ["invalid_cursor"],
        409: ["lookup_table_stale"],
        503: ["lookup_unavailable", "lookup_table_building"],
    }

    @extend_schema(
        operation_id="lookup_table_changes",
        parameters=[
            OpenApiParameter("key_id", str, required=True),
            OpenApiParameter("since", int, required=True, description="A table's position."),
        ],
        responses={200: shapes.LookupChangesSerializer},
    )
    def get(self, request):
        since = request.query_params.get("since", "")
        if not since.isascii() or not since.isdigit() or len(since) > 18:
            raise InvalidInput(
                "since is a table position (a non-negative integer).", code="invalid_cursor"
            )
        page = lookup_table_changes(key_id=request.query_params.get("key_id", ""), since=int(since))
        return Response(
            {
                "key_id": page.key.key_id,
                "since": page.since,
                "position": page.position,
                "more": page.more,
                "changes": [{"tag": tag.hex(), "state": state} for tag, state in page.changes],
            }
        )


class LookupEvaluateView(APIView):
    """Evaluate blinded elements under the current key, with one batched DLEQ proof."""

    permission_classes = [HasCapability]
    required_capability = Scope.LOOKUP
    error_codes = {
        400: ["invalid_element", "too_many_items"],
        403: ["lookup_token_required"],
        409: ["lookup_key_changed"],
        429: ["lookup_rate_limited"],
        503: ["lookup_unavailable"],
    }

    @extend_schema(
        operation_id="lookup_evaluate",
        request=shapes.LookupEvaluateRequestSerializer,
        responses={200: shapes.LookupEvaluateResponseSerializer},
    )
    def post(self, request):
        credential = principal_for_request(request).credential
        if credential is None:
            raise Forbidden(
                "Evaluations are counted per API credential: call with a token.",
                code="lookup_token_required",
            )
        body = request.data if isinstance(request.data, dict) else {}
        elements = lookup_elements_parse(body.get("blinded"))
        key, evaluated, proof = lookup_evaluate(
            credential=credential, key_id=body.get("key_id"), blinded=elements
        )
        return Response(
            {"key_id": key.key_id, "evaluated": [_b64(e) for e in evaluated], "proof": _b64(proof)}
        )
