"""The hub's URLs: the versioned API, its schema and docs, reports, TAXII, the Django admin, and
the monitoring endpoints."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from federation.api import views
from federation.hub import HubView
from federation.landing import LandingView
from federation.matching.api import MatchView

api_v1 = [
    path("hub/", HubView.as_view(), name="hub"),
    path("", include("members.urls")),
    path("", include("federation.contributions.urls")),
    path("", include("federation.vetting.urls")),
    path("log/", include("federation.transparency.urls")),
    path("witness/", include("federation.witnessing.urls")),
    path("sync/", include("federation.sync.urls")),
    path("match", MatchView.as_view(), name="match"),
    path("", include("federation.live.urls")),
    path("lookup/", include("federation.lookup.urls")),
    path("federation/", include("federation.propagation.urls")),
]

# Every API view is reached through these patterns, so the views' release (federation/api/views.py)
# is installed with them: installed at every process's start (the app's ``ready``), it imported
# DRF's views, and with them requests and pygments, into Celery workers, which serve no view
# (about 0.08 s of CPU at each worker's start).
views.install()

urlpatterns = [
    path("", LandingView.as_view(), name="landing"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("reports/", include("federation.reports.urls")),
    path("taxii2/", include("federation.taxii.urls")),
    path("", include("federation.monitoring.urls")),
    path("admin/", admin.site.urls),
]

# API URLs that match no view answer in the API's error shape (federation/api/errors.py).
handler400 = "federation.api.errors.api_bad_request"
handler403 = "federation.api.errors.api_permission_denied"
handler404 = "federation.api.errors.api_not_found"
handler500 = "federation.api.errors.api_server_error"
