"""The TAXII 2.1 API, mounted at /taxii2/ (docs/taxii.md)."""

from django.urls import path, re_path

from federation.taxii import api

_COLLECTION = f"{api.API_ROOT}collections/<str:collection_id>/"

urlpatterns = [
    path("", api.DiscoveryView.as_view(), name="taxii-discovery"),
    path(api.API_ROOT, api.ApiRootView.as_view(), name="taxii-api-root"),
    path(f"{api.API_ROOT}collections/", api.CollectionsView.as_view(), name="taxii-collections"),
    path(_COLLECTION, api.CollectionView.as_view(), name="taxii-collection"),
    path(f"{_COLLECTION}objects/", api.ObjectsView.as_view(), name="taxii-objects"),
    path(f"{_COLLECTION}objects/<str:object_id>/", api.ObjectView.as_view(), name="taxii-object"),
    path(
        f"{_COLLECTION}objects/<str:object_id>/versions/",
        api.VersionsView.as_view(),
        name="taxii-versions",
    ),
    path(f"{_COLLECTION}manifest/", api.ManifestView.as_view(), name="taxii-manifest"),
    re_path(r"^.*$", api.NoSuchResourceView.as_view(), name="taxii-no-such-resource"),
]
