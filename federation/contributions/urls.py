from django.urls import path

from federation.contributions import api

urlpatterns = [
    path("contributions/", api.ContributionListCreateView.as_view(), name="contribution-list"),
    path("contributions/bulk/", api.ContributionBulkView.as_view(), name="contribution-bulk"),
    path(
        "contributions/<uuid:uuid>/",
        api.ContributionDetailView.as_view(),
        name="contribution-detail",
    ),
    path("entries/", api.EntryListView.as_view(), name="entry-list"),
    path("entries/<int:pk>/", api.EntryDetailView.as_view(), name="entry-detail"),
]
