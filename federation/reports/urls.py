"""Server-rendered reports for auditors: who shared what, by period, member, label and type."""

from django.urls import path

from federation.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("export/<slug:report>.csv", views.OverviewCsvView.as_view(), name="export"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("search.csv", views.SearchCsvView.as_view(), name="search-csv"),
    path("entries/<int:pk>/", views.EntryHistoryView.as_view(), name="entry"),
    path("entries/<int:pk>.csv", views.EntryHistoryCsvView.as_view(), name="entry-csv"),
    path("transparency/", views.TransparencyView.as_view(), name="transparency"),
    path(
        "transparency.csv",
        views.TransparencyView.as_view(csv=True),
        name="transparency-csv",
    ),
]
