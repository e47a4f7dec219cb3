"""The witness's HTTP interface (C2SP tlog-witness), mounted at /api/v1/witness/ (the submission
and monitoring prefix), and the split-view evidence it holds.

Open to anyone, as the spec has it ("no authentication of requests beyond the validation of the
signature on the checkpoint"): a request changes the witness's state only when it carries a
checkpoint signed by the key the operator configured for that origin, and extends what was
cosigned before; a forger without the log's key can make it do nothing but refuse. The body is
bounded (64 KiB, 63 proof lines) and each request costs one row lock and a few signature
checks. Evidence is public for the same reason: it is made only of checkpoints the log signed.
"""

import hashlib

from django.http import HttpResponse, JsonResponse
from django.utils.http import parse_header_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.errors import NotFound
from federation.transparency.cosignatures import SIZE_CONTENT_TYPE, witness_verifier_key
from federation.transparency.models import SplitViewEvidence, WitnessedLog
from federation.witnessing.witness import WitnessRefusal, checkpoint_add
from members.actors import Actor

WITNESS_ACTOR = "witness"


class PublicWitnessView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []


class AddCheckpointView(PublicWitnessView):
    """C2SP tlog-witness ``add-checkpoint``: the old size, a consistency proof and a checkpoint
    signed by a log this hub witnesses; answers this hub's cosignature (one signature line)."""

    error_codes = {
        400: ["invalid"],
        403: ["bad_log_signature"],
        404: ["unknown_origin"],
        415: ["unsupported_media_type"],
        422: ["inconsistent", "split_view"],
    }

    @extend_schema(
        request={"text/plain": OpenApiTypes.STR},
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (409, SIZE_CONTENT_TYPE): OpenApiTypes.STR,
        },
        description="Body: `old <size>\\n`, up to 63 base64 proof lines, a blank line, the "
        "checkpoint (a signed note). 200: the cosignature line. 409 (`text/x.tlog.size`): the "
        "size of the latest checkpoint this witness cosigned for the origin, then a newline.",
    )
    def post(self, request):
        if not _is_text_body(request):
            return JsonResponse(
                {
                    "error": {
                        "code": "unsupported_media_type",
                        "message": "The body of add-checkpoint is text/plain (UTF-8), not "
                        f"{request.META.get('CONTENT_TYPE', '')[:100]!r}.",
                        "details": None,
                    }
                },
                status=415,
            )
        try:
            line = checkpoint_add(body=request.body, actor=Actor.system(WITNESS_ACTOR))
        except WitnessRefusal as refusal:
            if refusal.status == 409:
                return HttpResponse(f"{refusal.size}\n", status=409, content_type=SIZE_CONTENT_TYPE)
            return JsonResponse(
                {"error": {"code": refusal.code, "message": refusal.message, "details": None}},
                status=refusal.status,
            )
        return HttpResponse(line, content_type="text/plain; charset=utf-8")


def _is_text_body(request) -> bool:
    """``text/plain``, in UTF-8 if a charset is named; or no Content-Type at all, which the
    spec does not require of its clients. A JSON or form body is not a tlog-witness request."""
    header = request.META.get("CONTENT_TYPE", "")
    if not header.strip():
        return True
    media_type, params = parse_header_parameters(header)
    charset = params.get("charset", "utf-8").lower()
    return media_type.lower() == "text/plain" and charset in ("utf-8", "utf8")


class WitnessKeyView(PublicWitnessView):
    """This hub's witness key (a C2SP vkey of type 0x04), to pin in a verifier's policy."""

    @extend_schema(
        responses=inline_serializer(
            "WitnessKey",
            {"vkey": serializers.CharField(), "name": serializers.CharField()},
        )
    )
    def get(self, request):
        vkey = witness_verifier_key()
        return Response({"vkey": vkey, "name": vkey.split("+", 1)[0]})


class WitnessedCheckpointView(PublicWitnessView):
    """The latest checkpoint this witness cosigned for a log (C2SP monitoring retrieval): the
    log's note with the log's signature and this witness's cosignature."""

    error_codes = {404: ["not_found"]}

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request, origin_hash: str):
        for log in WitnessedLog.objects.exclude(checkpoint=""):
            if hashlib.sha256(log.origin.encode()).hexdigest() == origin_hash:
                return HttpResponse(log.checkpoint, content_type="text/plain; charset=utf-8")
        raise NotFound("This witness has cosigned no checkpoint of that origin.")


class EvidenceView(PublicWitnessView):
    """Every split view this witness caught: both signed checkpoints and the proof it was sent."""

    query_error_codes = True  # ?origin= (a NUL in it is 400 invalid, federation/api/middleware.py)

    @extend_schema(
        parameters=[OpenApiParameter("origin", OpenApiTypes.STR, required=False)],
        responses=inline_serializer(
            "SplitViewEvidenceList",
            {
                "witness": serializers.CharField(help_text="This witness's vkey."),
                "evidence": inline_serializer(
                    "SplitViewEvidence",
                    {
                        "id": serializers.IntegerField(),
                        "origin": serializers.CharField(),
                        "kind": serializers.CharField(
                            help_text="`same_size` (`inconsistent`: kept by earlier versions)."
                        ),
                        "reason": serializers.CharField(),
                        "detected_at": serializers.DateTimeField(),
                        "cosigned_note": serializers.CharField(
                            help_text="The checkpoint this witness had cosigned (signed note)."
                        ),
                        "shown_note": serializers.CharField(
                            help_text="The conflicting checkpoint it was shown (signed note)."
                        ),
                        "old_size": serializers.IntegerField(),
                        "proof": serializers.ListField(child=serializers.CharField()),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request):
        evidence = SplitViewEvidence.objects.order_by("pk")
        if request.query_params.get("origin"):
            evidence = evidence.filter(origin=request.query_params["origin"])
        return Response(
            {
                "witness": witness_verifier_key(),
                "evidence": [
                    {
                        "id": item.pk,
                        "origin": item.origin,
                        "kind": item.kind,
                        "reason": item.reason,
                        "detected_at": item.detected_at.isoformat(),
                        "cosigned_note": item.cosigned_note,
                        "shown_note": item.shown_note,
                        "old_size": item.old_size,
                        "proof": item.proof,
                    }
                    for item in evidence
                ],
            }
        )
