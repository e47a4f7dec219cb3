"""The transparency log API, mounted at /api/v1/log/ (docs/transparency.md)."""

from django.urls import path

from federation.transparency import api

urlpatterns = [
    path("key", api.VerifierKeyView.as_view(), name="log-key"),
    path("checkpoint", api.CheckpointView.as_view(), name="log-checkpoint"),
    path("checkpoint/cosigned", api.CosignedCheckpointView.as_view(), name="log-cosigned"),
    path("entries", api.EntriesView.as_view(), name="log-entries"),
    path("proof/inclusion", api.InclusionProofView.as_view(), name="log-inclusion-proof"),
    path("proof/consistency", api.ConsistencyProofView.as_view(), name="log-consistency-proof"),
    path("contributions", api.ContributionsView.as_view(), name="log-contributions"),
    path("figures", api.FiguresView.as_view(), name="log-figures"),
    path("status", api.StatusView.as_view(), name="log-status"),
    path("health", api.HealthView.as_view(), name="log-health"),
]
