from django.urls import path

from federation.vetting import api

urlpatterns = [
    path("review/queue/", api.ReviewQueueView.as_view(), name="review-queue"),
    path("entries/<int:pk>/approve/", api.EntryApproveView.as_view(), name="entry-approve"),
    path("entries/<int:pk>/reject/", api.EntryRejectView.as_view(), name="entry-reject"),
    path("entries/<int:pk>/resolve/", api.EntryResolveView.as_view(), name="entry-resolve"),
    path(
        "entries/<int:pk>/decisions/", api.EntryDecisionListView.as_view(), name="entry-decisions"
    ),
    path("entries/<int:pk>/feedback/", api.EntryFeedbackView.as_view(), name="entry-feedback"),
    path("labels/", api.LabelListView.as_view(), name="label-list"),
    path("incidents/", api.IncidentListCreateView.as_view(), name="incident-list"),
    path("incidents/<uuid:pk>/", api.IncidentDetailView.as_view(), name="incident-detail"),
    path("incidents/<uuid:pk>/close/", api.IncidentCloseView.as_view(), name="incident-close"),
    path("policy/", api.VettingPolicyView.as_view(), name="vetting-policy"),
]
