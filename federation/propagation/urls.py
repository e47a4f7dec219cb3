from django.urls import path

from federation.propagation import api, feed

urlpatterns = [
    path("batches", api.FederationBatchView.as_view(), name="federation-batches"),
    path("feed", feed.FederationFeedView.as_view(), name="federation-feed"),
]
