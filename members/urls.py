from django.urls import path

from members import api

urlpatterns = [
    path("keys/", api.SigningKeyListCreateView.as_view(), name="key-list"),
    path("keys/<str:key_id>/revoke/", api.SigningKeyRevokeView.as_view(), name="key-revoke"),
    path("credentials/", api.CredentialListCreateView.as_view(), name="credential-list"),
    path(
        "credentials/<int:pk>/revoke/", api.CredentialRevokeView.as_view(), name="credential-revoke"
    ),
    path("memberships/", api.MembershipListView.as_view(), name="membership-list"),
    path("memberships/<int:pk>/", api.MembershipRoleView.as_view(), name="membership-role"),
]
