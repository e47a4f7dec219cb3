"""The monitoring endpoints, at the site's root (outside /api/: docs/operations.md)."""

from django.urls import path

from federation.monitoring.views import LiveView, MetricsView, ReadyView

urlpatterns = [
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("health/live", LiveView.as_view(), name="health-live"),
    path("health/ready", ReadyView.as_view(), name="health-ready"),
]
