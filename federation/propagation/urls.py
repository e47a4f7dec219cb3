from django.urls import path

from federation.propagation import api

urlpatterns = [
    path("batches", api.FederationBatchView.as_view(), name="federation-batches"),
    path("feed", api.FederationFeedView.as_view(), name="federation-feed"),
]
