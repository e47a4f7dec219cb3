"""The sync API, mounted at /api/v1/sync/ (docs/sync.md)."""

from django.urls import path

from federation.sync import api

urlpatterns = [
    path("changes", api.SyncChangesView.as_view(), name="sync-changes"),
    path("export", api.SyncExportView.as_view(), name="sync-export"),
]
