"""Who is let in: bearer tokens, suspended organisations, deactivated users, hub staff."""

import pytest

from members.models import Organisation
from members.principals import ROLE_CAPABILITIES

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/entries/"),
        ("get", "/api/v1/contributions/"),
        ("get", "/api/v1/keys/"),
        ("get", "/api/v1/credentials/"),
        ("get", "/api/v1/memberships/"),
        ("post", "/api/v1/contributions/bulk/"),
    ],
)
def test_suspended_organisations_credentials_can_do_nothing(acme_admin, method, path):
    Organisation.objects.filter(pk=acme_admin.organisation.pk).update(status="suspended")
    response = getattr(acme_admin.client, method)(
        path, {"items": [acme_admin.signed()]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_suspended_submitter_cannot_submit(acme_submitter):
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(status="suspended")
    assert acme_submitter.submit().status_code == 403


def test_deactivated_holder_is_refused(acme_submitter):
    acme_submitter.user.is_active = False
    acme_submitter.user.save()
    assert acme_submitter.client.get("/api/v1/entries/").status_code == 401


def test_token_with_a_wrong_secret_is_refused(acme_submitter):
    acme_submitter.client.credentials(HTTP_AUTHORIZATION=f"Bearer {acme_submitter.token}x")
    response = acme_submitter.client.get("/api/v1/entries/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_auditor_cannot_submit_or_manage(auditor, acme_submitter):
    assert auditor.client.get("/api/v1/keys/").status_code == 403
    response = auditor.client.post("/api/v1/contributions/", acme_submitter.signed(), format="json")
    assert response.status_code == 403


def test_role_capabilities_are_as_documented():
    assert ROLE_CAPABILITIES["submitter"] == {"read", "submit"}
    assert ROLE_CAPABILITIES["reviewer"] == {"read", "review"}
    assert ROLE_CAPABILITIES["member-admin"] == {"read", "submit", "review", "manage"}
    assert ROLE_CAPABILITIES["consortium-admin"] == {"read", "audit", "hub-admin", "metrics"}
    assert ROLE_CAPABILITIES["auditor"] == {"audit"}
