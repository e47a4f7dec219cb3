"""The sync API, mounted at /api/v1/sync/ (docs/sync.md)."""

from django.urls import path

from federation.sync import api
from federation.video.api import SyncFramesView

urlpatterns = [
    path("changes", api.SyncChangesView.as_view(), name="sync-changes"),
    path("export", api.SyncExportView.as_view(), name="sync-export"),
    path("frames", SyncFramesView.as_view(), name="sync-frames"),
]
