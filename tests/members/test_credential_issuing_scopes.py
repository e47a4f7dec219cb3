"""A token can never mint a token that does more than it may; scopes are stored once each; every
response carrying a new secret tells caches not to keep it."""

import pytest
from rest_framework.test import APIClient

from federation.transparency.models import AuditEvent
from members.models import ApiCredential

pytestmark = pytest.mark.django_db


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _issue(client, scopes, name="t"):
    return client.post("/api/v1/credentials/", {"name": name, "scopes": scopes}, format="json")


def test_a_manage_only_token_cannot_mint_a_token_with_submit(acme_admin):
    manage_only = _client(_issue(acme_admin.client, ["manage"]).json()["token"])
    credentials = ApiCredential.objects.count()
    events = AuditEvent.objects.filter(action="credential.created").count()
    response = _issue(manage_only, ["submit"], name="escalation")
    assert response.status_code == 403, response.json()
    error = response.json()["error"]
    assert error["code"] == "scope_exceeds_issuer"
    assert error["details"] == {"scopes": ["submit"]}
    assert ApiCredential.objects.count() == credentials
    assert AuditEvent.objects.filter(action="credential.created").count() == events


def test_a_token_may_mint_tokens_within_its_own_scopes(acme_admin):
    manage_read = _client(_issue(acme_admin.client, ["manage", "read"]).json()["token"])
    response = _issue(manage_read, ["read"])
    assert response.status_code == 201, response.json()
    assert response.json()["scopes"] == ["read"]
    mixed = _issue(manage_read, ["read", "review"])
    assert mixed.status_code == 403
    assert mixed.json()["error"]["details"] == {"scopes": ["review"]}


def test_duplicate_scopes_are_stored_once(acme_admin):
    response = _issue(acme_admin.client, ["read", "read", "submit", "read"])
    assert response.status_code == 201, response.json()
    assert response.json()["scopes"] == ["read", "submit"]
    credential = ApiCredential.objects.get(pk=response.json()["id"])
    assert credential.scopes == ["read", "submit"]
    event = AuditEvent.objects.filter(action="credential.created").last()
    assert event.data["scopes"] == ["read", "submit"]


def test_the_response_carrying_a_new_token_is_not_cacheable(acme_admin):
    response = _issue(acme_admin.client, ["read"])
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]


def test_the_admin_page_showing_a_new_token_is_not_cacheable(consortium_admin, acme_submitter):
    from django.test import Client

    browser = Client()
    browser.force_login(consortium_admin.user)
    response = browser.post(
        "/admin/members/apicredential/add/",
        {"holder": acme_submitter.user.pk, "name": "from-admin", "scopes": ["read"]},
        follow=True,
    )
    assert response.status_code == 200
    assert "copy it: cc_" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
