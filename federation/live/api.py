"""The live-stream API (docs/video.md, "Live streams"): ``POST /api/v1/live`` opens a session,
``POST /api/v1/live/{id}/frames`` appends frames and answers with the alerts so far, ``GET``
shows a session, ``DELETE`` closes it. Needs ``read``, like matching; a session belongs to the
member organisation that opened it (another's answers 404)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from federation.live import services
from federation.live.models import LiveSession
from federation.matching.answers import render_matched_entries
from federation.matching.services import VPDQ
from members.actors import Actor
from members.models import Scope
from members.permissions import HasCapability
from members.principals import principal_for_request

_SESSION = OpenApiResponse(description='The session (docs/video.md, "Live streams").')


def session_document(session: LiveSession) -> dict:
    return {
        "id": str(session.id),
        "state": session.state,
        "opened_at": session.opened_at.isoformat(),
        "last_call_at": session.last_call_at.isoformat(),
        "closed_at": session.closed_at.isoformat() if session.closed_at else None,
        "threshold": session.threshold,
        "frame_quality_min": session.frame_quality_min,
        "min_frames": session.min_frames,
        "coverage": session.coverage,
        "frames": session.frames_received,
        "calls": session.calls,
        "alerted": list(session.alerted),
    }


def _actor(request) -> Actor:
    return Actor.for_principal(principal_for_request(request))


class LiveSessionsView(APIView):
    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {
        400: ["invalid", "invalid_live_parameter"],
        403: ["member_only"],
        429: ["too_many_sessions"],
    }

    @extend_schema(operation_id="live_open", request=None, responses={201: _SESSION})
    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        session = services.live_session_open(
            actor=_actor(request), settings=services.live_settings_parse(body)
        )
        return Response(session_document(session), status=201)


class LiveSessionView(APIView):
    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {403: ["member_only"], 404: ["not_found"]}

    @extend_schema(operation_id="live_show", responses={200: _SESSION})
    def get(self, request, session_id):
        session = services.live_session_get(actor=_actor(request), session_id=session_id)
        return Response(session_document(session))

    @extend_schema(operation_id="live_close", responses={200: _SESSION})
    def delete(self, request, session_id):
        session = services.live_session_close(actor=_actor(request), session_id=session_id)
        return Response(session_document(session))


class LiveFramesView(APIView):
    permission_classes = [HasCapability]
    required_capability = Scope.READ
    error_codes = {
        400: ["invalid", "invalid_signal", "too_many_items"],
        403: ["member_only"],
        404: ["not_found"],
        409: ["closed", "session_full"],
    }

    @extend_schema(operation_id="live_frames", request=None, responses={200: _SESSION})
    def post(self, request, session_id):
        body = request.data if isinstance(request.data, dict) else {}
        answer = services.live_frames_append(
            actor=_actor(request), session_id=session_id, frames=body.get("frames")
        )
        wanted = [(VPDQ, a["value"]) for a in answer.alerts]
        wanted += [("pdq", value) for _, value, _ in answer.photo_hits]
        entries = render_matched_entries(wanted)
        alerts = []
        for alert in answer.alerts:
            entry = entries.get((VPDQ, alert["value"]))
            if entry is not None:
                alerts.append(
                    {**entry, **{k: v for k, v in alert.items() if k not in ("value", "state")}}
                )
        frame_matches = [
            {**entries[("pdq", value)], "distance": distance, "query_ms": ms}
            for ms, value, distance in answer.photo_hits
            if ("pdq", value) in entries
        ]
        return Response(
            {
                "session": session_document(answer.session),
                "alerts": alerts,
                "frame_matches": frame_matches,
            }
        )
