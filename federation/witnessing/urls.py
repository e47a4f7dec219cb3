"""The witness's interface, mounted at /api/v1/witness/ (docs/transparency.md, "Witnesses")."""

from django.urls import path

from federation.witnessing import api

urlpatterns = [
    path("add-checkpoint", api.AddCheckpointView.as_view(), name="witness-add-checkpoint"),
    path("key", api.WitnessKeyView.as_view(), name="witness-key"),
    path("evidence", api.EvidenceView.as_view(), name="witness-evidence"),
    path(
        "<str:origin_hash>/checkpoint",
        api.WitnessedCheckpointView.as_view(),
        name="witness-checkpoint",
    ),
]
