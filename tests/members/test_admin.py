"""The Django admin of organisations, users and roles, signing keys and API credentials: each
change goes through members.services and writes the same audit event as the API."""

import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.test import Client

from federation.canonical import canonical_bytes
from federation.transparency.models import AuditEvent
from members.models import ApiCredential, Membership, Organisation, SigningKey
from tests.support.parties import raw_public_key, signed_key_registration

User = get_user_model()


@pytest.fixture
def connie(consortium_admin) -> Client:
    client = Client()
    client.force_login(consortium_admin.user)
    return client


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("pk")


def test_key_revoke_action_asks_for_a_reason_and_calls_the_service(connie, acme_submitter):
    key = acme_submitter.signing_key
    url = "/admin/members/signingkey/"
    data = {"action": "revoke_keys", "_selected_action": [str(key.pk)]}

    asked = connie.post(url, data)
    assert asked.status_code == 200
    assert "Revoke signing keys" in asked.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None

    connie.post(url, {**data, "apply": "1", "reason": "laptop stolen"})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoke_reason == "laptop stolen"
    event = last_event("key.revoked")
    assert (event.actor_type, event.actor_label) == ("user", "connie")
    assert event.data["reason"] == "laptop stolen"
    # The revoked key no longer signs.
    assert acme_submitter.submit().json()["error"]["code"] == "key_not_active"


def test_key_is_registered_in_the_admin_from_the_members_signed_registration(connie, acme):
    private_key = Ed25519PrivateKey.generate()
    signed = signed_key_registration(private_key, acme)
    response = connie.post(
        "/admin/members/signingkey/add/",
        {"organisation": acme.pk, "signed_registration": json.dumps(signed), "label": "hsm"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    key = SigningKey.objects.get(label="hsm")
    assert key.public_key_bytes == raw_public_key(private_key)
    assert key.registration.encode() == canonical_bytes(signed["registration"])
    assert last_event("key.registered").actor_type == "user"
    assert key.created_by.username == "connie"  # the acting admin, from the actor


def test_a_registration_for_another_member_is_refused_by_the_form_and_audited(connie, acme, globex):
    signed = signed_key_registration(Ed25519PrivateKey.generate(), globex)
    response = connie.post(
        "/admin/members/signingkey/add/",
        {"organisation": acme.pk, "signed_registration": json.dumps(signed)},
    )
    assert response.status_code == 200
    assert "proof_mismatch" in response.content.decode()
    assert not SigningKey.objects.filter(organisation=acme).exists()
    event = last_event("key.rejected")
    assert (event.data["code"], event.data["field"], event.actor_label) == (
        "proof_mismatch",
        "member",
        "connie",
    )


def test_a_bare_public_key_is_refused_with_the_form(connie, acme):
    public_key = raw_public_key(Ed25519PrivateKey.generate())
    response = connie.post(
        "/admin/members/signingkey/add/",
        {"organisation": acme.pk, "signed_registration": public_key.hex()},
    )
    assert response.status_code == 200
    assert "This is not JSON" in response.content.decode()
    assert not SigningKey.objects.filter(organisation=acme).exists()


def test_credential_created_in_the_admin_shows_its_token_once(connie, acme_reviewer):
    response = connie.post(
        "/admin/members/apicredential/add/",
        {"holder": acme_reviewer.user.pk, "name": "ci-review", "scopes": ["read", "review"]},
        follow=True,
    )

    page = response.content.decode()
    (token,) = re.findall(r"cc_[0-9a-f]{12}_[A-Za-z0-9_-]+", page)
    credential = ApiCredential.objects.get(name="ci-review")
    assert credential.organisation == acme_reviewer.organisation
    assert last_event("credential.created").actor_type == "user"
    # The token works, and is never shown again.
    assert Client().get("/api/v1/entries/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    again = connie.get(f"/admin/members/apicredential/{credential.pk}/change/").content.decode()
    assert token not in again


def test_credential_scopes_are_shown_as_words_not_json(connie, acme_reviewer):
    connie.post(
        "/admin/members/apicredential/add/",
        {"holder": acme_reviewer.user.pk, "name": "ci-words", "scopes": ["read", "review"]},
    )
    credential = ApiCredential.objects.get(name="ci-words")

    listed = connie.get("/admin/members/apicredential/").content.decode()
    page = connie.get(f"/admin/members/apicredential/{credential.pk}/change/").content.decode()

    assert "read, review" in listed
    assert "[&#x27;read" not in listed and "[&quot;read" not in listed
    assert "review: Vet entries and give feedback" in page


def test_the_new_token_never_travels_in_a_cookie(connie, acme_reviewer):
    # Django's default message storage would put the token in a (signed, readable) cookie on the
    # redirect after saving; messages are kept in the session instead.
    response = connie.post(
        "/admin/members/apicredential/add/",
        {"holder": acme_reviewer.user.pk, "name": "ci-review", "scopes": ["read", "review"]},
    )
    assert response.status_code == 302
    assert "messages" not in response.cookies
    page = connie.get(response["Location"]).content.decode()
    (token,) = re.findall(r"cc_[0-9a-f]{12}_[A-Za-z0-9_-]+", page)
    # The secret is everything after the prefix; it may itself hold "_", so rsplit would leave a
    # fragment of a few characters that a cookie can hold by chance.
    secret = token.split("_", 2)[2]
    assert len(secret) >= 32
    assert all(secret not in morsel.value for morsel in connie.cookies.values())


def test_credential_with_scopes_beyond_the_role_is_refused(connie, acme_reviewer):
    response = connie.post(
        "/admin/members/apicredential/add/",
        {"holder": acme_reviewer.user.pk, "name": "too-much", "scopes": ["submit"]},
        follow=True,
    )
    assert "does not allow scopes" in response.content.decode()
    assert not ApiCredential.objects.filter(name="too-much").exists()


def test_credential_revoke_action(connie, acme_submitter):
    credential = ApiCredential.objects.get(holder=acme_submitter.user)
    connie.post(
        "/admin/members/apicredential/",
        {"action": "revoke_credentials", "_selected_action": [str(credential.pk)]},
    )
    credential.refresh_from_db()
    assert credential.revoked_at is not None
    assert acme_submitter.client.get("/api/v1/entries/").status_code == 401
    assert last_event("credential.revoked").actor_label == "connie"


def test_membership_is_given_through_the_service(connie, acme):
    user = User.objects.create_user("newbie", password="pw")
    response = connie.post(
        "/admin/members/membership/add/",
        {"user": user.pk, "organisation": acme.pk, "role": "reviewer"},
    )
    assert response.status_code == 302
    assert Membership.objects.get(user=user).role == "reviewer"
    event = last_event("role.changed")
    assert event.data == {"user": "newbie", "from": None, "to": "reviewer"}
    assert event.actor_type == "user"


def test_hub_staff_cannot_be_given_a_membership(connie, auditor, acme):
    response = connie.post(
        "/admin/members/membership/add/",
        {"user": auditor.user.pk, "organisation": acme.pk, "role": "reviewer"},
        follow=True,
    )
    assert "Hub staff cannot also belong" in response.content.decode()
    assert not Membership.objects.filter(user=auditor.user).exists()


def test_marking_an_organisation_trusted_is_audited(connie, acme):
    connie.post(
        f"/admin/members/organisation/{acme.pk}/change/",
        {
            "name": "Acme",
            "status": "active",
            "trusted": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    acme.refresh_from_db()
    assert acme.trusted is True
    event = last_event("organisation.changed")
    assert (event.data["from"]["trusted"], event.data["to"]["trusted"]) == (False, True)


def test_consortium_admin_cannot_make_a_superuser(connie, acme_submitter):
    user = acme_submitter.user
    response = connie.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": user.username,
            "is_active": "on",
            "is_superuser": "on",
            "email": "alice@example.org",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.is_superuser is False
    assert user.email == "alice@example.org"
    assert last_event("user.changed").data["to"]["email"] == "alice@example.org"


def test_members_and_auditors_cannot_manage_members(auditor, acme_admin):
    for party in (auditor, acme_admin):
        client = Client()
        client.force_login(party.user)
        assert client.get("/admin/members/organisation/").status_code in (302, 403)
    assert Organisation.objects.count() == 1


def test_admin_password_change_and_its_audit_event_commit_together(connie, monkeypatch):
    user = User.objects.create_user("pat", password="old-password-1")
    url = f"/admin/auth/user/{user.pk}/password/"
    form = {"password1": "N3w-passphrase!", "password2": "N3w-passphrase!"}

    def failing_audit(record):
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr("members.services.users.audit_record", failing_audit)
    with pytest.raises(RuntimeError):
        connie.post(url, form)
    user.refresh_from_db()
    assert user.check_password("old-password-1")  # rolled back with the failed audit write

    monkeypatch.undo()
    assert connie.post(url, form).status_code == 302
    user.refresh_from_db()
    assert user.check_password("N3w-passphrase!")
    assert AuditEvent.objects.filter(action="user.changed", object_id="pat").count() == 1
