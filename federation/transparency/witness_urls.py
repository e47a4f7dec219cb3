"""The witness's interface, mounted at /api/v1/witness/ (docs/transparency.md, "Witnesses")."""

from django.urls import path

from federation.transparency import witness_api

urlpatterns = [
    path("add-checkpoint", witness_api.AddCheckpointView.as_view(), name="witness-add-checkpoint"),
    path("key", witness_api.WitnessKeyView.as_view(), name="witness-key"),
    path("evidence", witness_api.EvidenceView.as_view(), name="witness-evidence"),
    path(
        "<str:origin_hash>/checkpoint",
        witness_api.WitnessedCheckpointView.as_view(),
        name="witness-checkpoint",
    ),
]
