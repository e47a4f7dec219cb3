"""Routes of the live-stream API, under ``/api/v1/``."""

from django.urls import path

from federation.live import api

urlpatterns = [
    path("live", api.LiveSessionsView.as_view(), name="live-sessions"),
    path("live/<uuid:session_id>", api.LiveSessionView.as_view(), name="live-session"),
    path("live/<uuid:session_id>/frames", api.LiveFramesView.as_view(), name="live-frames"),
]
