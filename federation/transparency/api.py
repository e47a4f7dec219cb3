"""The log's read API for auditors (docs/transparency.md): the hub's verifier key, signed
checkpoints, entries by index range, RFC 9162 inclusion and consistency proofs, the signed bytes
of accepted contributions by leaf range, figures counted from the log, and the log's status
(freshness, sequencer health; a public health check for monitoring).

Readers need the ``audit`` capability (auditors, consortium admins) unless
``settings.TRANSPARENCY_LOG_PUBLIC`` opens the log to anyone; the key and the health check are always public.
"""

import base64
import json
import re
from datetime import UTC

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.errors import InvalidInput
from federation.hubkey import hub_public_key_b64, hub_public_key_bytes
from federation.transparency import log_selectors as selectors
from federation.transparency.checkpoints import hub_key_name, hub_verifier_key, key_id
from federation.transparency.cosigning import cosigned_checkpoint, cosigned_note
from federation.transparency.figures import log_figures
from members.models import Scope
from members.permissions import HasCapability

# ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses.
_DECIMAL = re.compile(r"[0-9]{1,19}")
# What _int_param accepts, for the OpenAPI schema: 1-19 decimal digits.
_INDEX = {"type": "integer", "minimum": 0, "maximum": 9_999_999_999_999_999_999}


class CanReadLog(HasCapability):
    """The ``audit`` capability, or anyone when the log is public."""

    def has_permission(self, request, view) -> bool:
        if settings.TRANSPARENCY_LOG_PUBLIC:
            return True
        return super().has_permission(request, view)


class PlainTextRenderer(BaseRenderer):
    """Lets clients that ask for ``text/plain`` get the signed note (errors stay JSON text)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str) else json.dumps(data)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _int_param(request, name: str, *, required: bool = True) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput(
                f"The query parameter {name!r} is required.",
                code="missing_parameter",
                details={"parameter": name},
            )
        return None
    if not _DECIMAL.fullmatch(raw):
        raise InvalidInput(
            f"The query parameter {name!r} must be a non-negative integer.",
            details={"parameter": name, "value": raw[:32]},
        )
    return int(raw)


MAX_POLICY_WITNESSES = 32  # a verifier's policy names its witnesses in the query


class LogView(APIView):
    permission_classes = [CanReadLog]
    required_capability = Scope.AUDIT


class VerifierKeyView(APIView):
    """Public: the verifier key auditors pin (C2SP signed-note vkey format)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=inline_serializer(
            "LogKey",
            {
                "vkey": serializers.CharField(),
                "key_name": serializers.CharField(),
                "key_id": serializers.CharField(),
                "public_key": serializers.CharField(),
                "algorithm": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        name = hub_key_name()
        return Response(
            {
                "vkey": hub_verifier_key(),
                "key_name": name,
                "key_id": key_id(name, hub_public_key_bytes()).hex(),
                "public_key": hub_public_key_b64(),
                "algorithm": "ed25519",
            }
        )


class CheckpointView(LogView):
    """The latest signed checkpoint (or the one at ``?size=N``) as a C2SP signed note."""

    error_codes = {400: ["invalid", "bad_tree_size"], 404: ["no_checkpoint", "not_found"]}

    renderer_classes = [JSONRenderer, PlainTextRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("size", _INDEX, required=False)],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request):
        checkpoint = selectors.checkpoint_for(tree_size=_int_param(request, "size", required=False))
        return HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")


class CosignedCheckpointView(LogView):
    """The newest checkpoint that witnesses cosigned (or the one at ``?size=N``, or the newest
    that ``threshold`` of the witnesses named by ``witness`` cosigned), as one signed note: the
    hub's signature, then every cosignature held for it (docs/transparency.md, "Witnesses"). The
    latest checkpoint, with no cosignature, while none has any."""

    error_codes = {400: ["invalid"], 404: ["no_checkpoint", "not_found"]}

    renderer_classes = [JSONRenderer, PlainTextRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("size", _INDEX, required=False),
            OpenApiParameter("witness", OpenApiTypes.STR, required=False, many=True),
            OpenApiParameter("threshold", OpenApiTypes.INT, required=False),
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request):
        witnesses = request.query_params.getlist("witness")
        threshold = _int_param(request, "threshold", required=False)
        if len(witnesses) > MAX_POLICY_WITNESSES or any(
            not 1 <= len(name) <= 200 for name in witnesses
        ):
            raise InvalidInput(
                f"Name 1 to {MAX_POLICY_WITNESSES} witnesses, each 1-200 characters.",
                details={"parameter": "witness"},
            )
        if threshold is not None and not 1 <= threshold <= max(len(set(witnesses)), 1):
            raise InvalidInput(
                "The threshold must be between 1 and the number of witnesses named.",
                details={"parameter": "threshold", "value": threshold},
            )
        checkpoint, cosignatures = cosigned_checkpoint(
            tree_size=_int_param(request, "size", required=False),
            witnesses=witnesses,
            threshold=threshold,
        )
        return HttpResponse(
            cosigned_note(checkpoint, cosignatures), content_type="text/plain; charset=utf-8"
        )


class EntriesView(LogView):
    """Leaves ``[start, end)`` (at most 1000) of the tree the latest checkpoint signs."""

    error_codes = {400: ["missing_parameter", "invalid", "bad_range"], 404: ["no_checkpoint"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("start", _INDEX, required=True),
            OpenApiParameter("end", _INDEX, required=True, description="exclusive"),
        ],
        responses=inline_serializer(
            "LogEntries",
            {
                "tree_size": serializers.IntegerField(help_text="Of the latest checkpoint."),
                "start": serializers.IntegerField(),
                "end": serializers.IntegerField(help_text="Exclusive; start + len(entries)."),
                "entries": inline_serializer(
                    "LogEntry",
                    {
                        "leaf_index": serializers.IntegerField(),
                        "event": serializers.JSONField(
                            help_text="The audit event document (docs/transparency.md)."
                        ),
                        "leaf": serializers.CharField(
                            help_text="The leaf bytes (RFC 8785 JSON of event), base64."
                        ),
                        "leaf_hash": serializers.CharField(
                            help_text="SHA-256(0x00 || leaf), base64."
                        ),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request):
        start = _int_param(request, "start")
        end = _int_param(request, "end")
        tree_size, entries = selectors.log_entries(start=start, end=end)
        return Response(
            {
                "tree_size": tree_size,
                "start": start,
                "end": start + len(entries),
                "entries": [
                    {
                        "leaf_index": entry.leaf_index,
                        "event": entry.document,
                        "leaf": _b64(entry.leaf_bytes),
                        "leaf_hash": _b64(entry.leaf_hash),
                    }
                    for entry in entries
                ],
            }
        )


class InclusionProofView(LogView):
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``tree_size`` leaves."""

    error_codes = {
        400: ["missing_parameter", "invalid", "bad_tree_size", "bad_leaf_index"],
        404: ["no_checkpoint"],
    }

    @extend_schema(
        parameters=[
            OpenApiParameter("index", _INDEX, required=True),
            OpenApiParameter("tree_size", _INDEX, required=False),
        ],
        responses=inline_serializer(
            "InclusionProof",
            {
                "leaf_index": serializers.IntegerField(),
                "tree_size": serializers.IntegerField(),
                "inclusion_path": serializers.ListField(
                    child=serializers.CharField(), help_text="Node hashes, base64 (RFC 9162)."
                ),
            },
        ),
    )
    def get(self, request):
        proof = selectors.inclusion_proof(
            leaf_index=_int_param(request, "index"),
            tree_size=_int_param(request, "tree_size", required=False),
        )
        return Response(
            {
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "inclusion_path": [_b64(node) for node in proof.inclusion_path],
            }
        )


class ConsistencyProofView(LogView):
    """RFC 9162 consistency proof between the trees of ``first`` and ``second`` leaves."""

    error_codes = {
        400: ["missing_parameter", "invalid", "bad_tree_size"],
        404: ["no_checkpoint"],
    }

    @extend_schema(
        parameters=[
            OpenApiParameter("first", _INDEX, required=True),
            OpenApiParameter("second", _INDEX, required=False),
        ],
        responses=inline_serializer(
            "ConsistencyProof",
            {
                "tree_size_1": serializers.IntegerField(),
                "tree_size_2": serializers.IntegerField(),
                "consistency_path": serializers.ListField(
                    child=serializers.CharField(), help_text="Node hashes, base64 (RFC 9162)."
                ),
            },
        ),
    )
    def get(self, request):
        proof = selectors.consistency_proof(
            first=_int_param(request, "first"),
            second=_int_param(request, "second", required=False),
        )
        return Response(
            {
                "tree_size_1": proof.tree_size_1,
                "tree_size_2": proof.tree_size_2,
                "consistency_path": [_b64(node) for node in proof.consistency_path],
            }
        )


def _time(moment) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else None


def _status_document(status: selectors.LogStatus) -> dict:
    return {
        "healthy": status.healthy,
        "tree_size": status.tree_size,
        "checkpoint_signed_at": _time(status.checkpoint_signed_at),
        "unsequenced_events": status.unsequenced_events,
        "oldest_unsequenced_at": _time(status.oldest_unsequenced_at),
        "oldest_unsequenced_age_seconds": status.oldest_unsequenced_age_seconds,
        "stalled": status.stalled,
        "stall_seconds": status.stall_seconds,
        "sequencer": {
            "state": status.sequencer_state,
            "reason": status.sequencer_reason,
            "since": _time(status.sequencer_since),
            "refusals": status.sequencer_refusals,
        },
    }


class StatusView(LogView):
    """How fresh the log is: when the latest checkpoint was signed, how many events wait for a
    leaf and since when, and whether the sequencer refuses (with its reason)."""

    @extend_schema(
        responses=inline_serializer(
            "LogStatus",
            {
                "healthy": serializers.BooleanField(),
                "tree_size": serializers.IntegerField(help_text="Of the latest checkpoint."),
                "checkpoint_signed_at": serializers.DateTimeField(allow_null=True),
                "unsequenced_events": serializers.IntegerField(),
                "oldest_unsequenced_at": serializers.DateTimeField(allow_null=True),
                "oldest_unsequenced_age_seconds": serializers.FloatField(allow_null=True),
                "stalled": serializers.BooleanField(),
                "stall_seconds": serializers.IntegerField(),
                "sequencer": inline_serializer(
                    "LogSequencer",
                    {
                        "state": serializers.CharField(help_text="`ok` or `refused`."),
                        "reason": serializers.CharField(),
                        "since": serializers.DateTimeField(allow_null=True),
                        "refusals": serializers.IntegerField(),
                    },
                ),
            },
        )
    )
    def get(self, request):
        return Response(_status_document(selectors.log_status()))


class HealthView(APIView):
    """Public, for monitoring: 200 when the log is sequencing, 503 (code ``log_refused`` or
    ``log_stalled``) when the sequencer refuses or events wait longer than the stall bound."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    error_codes = {503: ["log_refused", "log_stalled"]}

    @extend_schema(
        responses=inline_serializer(
            "LogHealth",
            {
                "status": serializers.CharField(help_text="`ok`."),
                "tree_size": serializers.IntegerField(),
            },
        )
    )
    def get(self, request):
        status = selectors.log_status()
        if status.healthy:
            return Response({"status": "ok", "tree_size": status.tree_size})
        refused = status.sequencer_state != "ok"
        return Response(
            {
                "error": {
                    "code": "log_refused" if refused else "log_stalled",
                    "message": (
                        "The audit log sequencer refuses to sequence; no checkpoint is signed."
                        if refused
                        else "Audit events have waited longer than the stall bound for a leaf."
                    ),
                    "details": {
                        "unsequenced_events": status.unsequenced_events,
                        "oldest_unsequenced_age_seconds": status.oldest_unsequenced_age_seconds,
                        "checkpoint_signed_at": _time(status.checkpoint_signed_at),
                        "since": _time(status.sequencer_since) if refused else None,
                    },
                }
            },
            status=503,
        )


class ContributionsView(LogView):
    """For leaves ``[start, end)`` (at most 1000) of the published tree, the signed bytes and
    signature of each ``contribution.accepted`` leaf, so an auditor can check the member's
    signature against the key of its ``key.registered`` leaf."""

    error_codes = {400: ["missing_parameter", "invalid", "bad_range"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("start", _INDEX, required=True),
            OpenApiParameter("end", _INDEX, required=True, description="exclusive"),
        ],
        responses=inline_serializer(
            "LogContributions",
            {
                "tree_size": serializers.IntegerField(help_text="Of the latest checkpoint."),
                "start": serializers.IntegerField(),
                "end": serializers.IntegerField(help_text="Exclusive."),
                "contributions": inline_serializer(
                    "LogContribution",
                    {
                        "leaf_index": serializers.IntegerField(),
                        "uuid": serializers.UUIDField(),
                        "canonical": serializers.CharField(
                            allow_null=True, help_text="Base64 of the signed RFC 8785 bytes."
                        ),
                        "signature": serializers.CharField(
                            allow_null=True, help_text="Base64 of the member's Ed25519 signature."
                        ),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request):
        start = _int_param(request, "start")
        end = _int_param(request, "end")
        tree_size, found = selectors.log_contributions(start=start, end=end)
        return Response(
            {
                "tree_size": tree_size,
                "start": start,
                "end": min(end, tree_size),
                "contributions": [
                    {
                        "leaf_index": item.leaf_index,
                        "uuid": item.uuid,
                        "canonical": _b64(item.canonical) if item.canonical is not None else None,
                        "signature": _b64(item.signature) if item.signature is not None else None,
                    }
                    for item in found
                ],
            }
        )


class FiguresView(LogView):
    """Headline figures counted from the first ``size`` leaves (default: the latest checkpoint),
    optionally for one month (``YYYY-MM``, by ``occurred_at``)."""

    error_codes = {400: ["invalid", "bad_tree_size"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("size", _INDEX, required=False),
            OpenApiParameter(
                "month",
                {"type": "string", "pattern": r"^((?!0000)[0-9]{4}-(0[1-9]|1[0-2]))?$"},
                required=False,
                description="YYYY-MM, 0001-01 to 9999-12 (empty: every month).",
            ),
        ],
        responses=inline_serializer(
            "LogFigures",
            {
                "tree_size": serializers.IntegerField(),
                "month": serializers.CharField(allow_null=True),
                "events": serializers.IntegerField(),
                "events_by_action": serializers.DictField(child=serializers.IntegerField()),
                "contributions_accepted": serializers.IntegerField(),
                "contributions_by_action": serializers.DictField(child=serializers.IntegerField()),
                "contributions_by_organisation": serializers.DictField(
                    child=serializers.IntegerField()
                ),
                "contributions_by_label": serializers.DictField(child=serializers.IntegerField()),
                "contributions_by_signal_type": serializers.DictField(
                    child=serializers.IntegerField()
                ),
            },
        ),
    )
    def get(self, request):
        size = _int_param(request, "size", required=False)
        if size is None:
            latest = selectors.latest_checkpoint()
            size = latest.tree_size if latest else 0
        month = request.query_params.get("month") or None
        return Response(log_figures(tree_size=size, month=month))
