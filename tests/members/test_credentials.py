"""API credentials: scoped, shown once, stored hashed, expirable, revocable, per organisation."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from federation.transparency.models import AuditEvent
from members.models import ApiCredential

pytestmark = pytest.mark.django_db


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_token_is_shown_once_and_only_its_sha256_is_stored(acme_admin):
    response = acme_admin.client.post(
        "/api/v1/credentials/", {"name": "ci", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    token = response.json()["token"]
    prefix, secret = token.removeprefix("cc_").split("_", 1)
    stored = ApiCredential.objects.get(prefix=prefix)
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiCredential.objects.filter(pk=stored.pk).values().get())
    listed = acme_admin.client.get("/api/v1/credentials/").json()["results"]
    assert all("token" not in c for c in listed)
    assert AuditEvent.objects.filter(action="credential.created", object_id=f"cc_{prefix}").exists()


def test_scopes_limit_what_a_token_can_do(acme_admin):
    token = acme_admin.client.post(
        "/api/v1/credentials/", {"name": "reader", "scopes": ["read"]}, format="json"
    ).json()["token"]
    reader = _client(token)
    assert reader.get("/api/v1/entries/").status_code == 200
    assert reader.get("/api/v1/keys/").status_code == 403
    assert (
        reader.post("/api/v1/contributions/", acme_admin.signed(), format="json").status_code == 403
    )


def test_scopes_beyond_the_holders_role_are_refused(acme_admin, acme_submitter):
    response = acme_admin.client.post(
        "/api/v1/credentials/",
        {"name": "x", "scopes": ["manage"], "holder": acme_submitter.user.username},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "scope_not_allowed"


def test_holder_must_belong_to_the_admins_organisation(acme_admin, globex_submitter):
    response = acme_admin.client.post(
        "/api/v1/credentials/",
        {"name": "x", "scopes": ["read"], "holder": globex_submitter.user.username},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_holder"


def test_revoked_token_is_refused_at_once_and_revocation_is_audited(acme_admin):
    body = acme_admin.client.post(
        "/api/v1/credentials/", {"name": "tmp", "scopes": ["read"]}, format="json"
    ).json()
    client = _client(body["token"])
    assert client.get("/api/v1/entries/").status_code == 200
    revoked = acme_admin.client.post(f"/api/v1/credentials/{body['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/entries/").status_code == 401
    assert AuditEvent.objects.filter(action="credential.revoked").count() == 1
    again = acme_admin.client.post(f"/api/v1/credentials/{body['id']}/revoke/")
    assert again.status_code == 409


def test_expired_token_is_refused(acme_admin):
    body = acme_admin.client.post(
        "/api/v1/credentials/",
        {
            "name": "short",
            "scopes": ["read"],
            "expires_at": (timezone.now() + timedelta(hours=1)).isoformat(),
        },
        format="json",
    ).json()
    ApiCredential.objects.filter(pk=body["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = _client(body["token"]).get("/api/v1/entries/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expiry_in_the_past_is_refused(acme_admin):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = acme_admin.client.post(
        "/api/v1/credentials/", {"name": "x", "scopes": ["read"], "expires_at": past}, format="json"
    )
    assert response.status_code == 400


def test_admin_cannot_list_or_revoke_another_organisations_credentials(acme_admin, globex_admin):
    listed = acme_admin.client.get("/api/v1/credentials/").json()["results"]
    assert globex_admin.user.username not in {c["holder"] for c in listed}
    theirs = globex_admin.user.credentials.get()
    response = acme_admin.client.post(f"/api/v1/credentials/{theirs.pk}/revoke/")
    assert response.status_code == 404
    assert ApiCredential.objects.get(pk=theirs.pk).revoked_at is None
