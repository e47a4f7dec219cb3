"""The private lookup API, mounted at /api/v1/lookup/ (docs/private-lookup.md)."""

from django.urls import path

from federation.lookup import api

urlpatterns = [
    path("key", api.LookupKeyView.as_view(), name="lookup-key"),
    path("table", api.LookupTableView.as_view(), name="lookup-table"),
    path("table/changes", api.LookupTableChangesView.as_view(), name="lookup-table-changes"),
    path("evaluate", api.LookupEvaluateView.as_view(), name="lookup-evaluate"),
]
