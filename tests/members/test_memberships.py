"""Member admins see their organisation's users and change their roles."""

import pytest

from federation.transparency.models import AuditEvent
from members.models import Membership

pytestmark = pytest.mark.django_db


def test_admin_lists_only_their_organisations_users(acme_admin, acme_submitter, globex_submitter):
    listed = acme_admin.client.get("/api/v1/memberships/").json()["results"]
    assert {m["username"] for m in listed} == {"ada", "alice"}


def test_role_change_takes_effect_and_is_audited(acme_admin, acme_submitter):
    membership = acme_submitter.user.membership
    response = acme_admin.client.patch(
        f"/api/v1/memberships/{membership.pk}/", {"role": "reviewer"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert Membership.objects.get(pk=membership.pk).role == "reviewer"
    event = AuditEvent.objects.get(action="role.changed", object_id="alice")
    assert event.data == {"user": "alice", "from": "submitter", "to": "reviewer"}
    # alice's token still carries "submit", but her role no longer allows it.
    assert acme_submitter.submit().status_code == 403


def test_setting_the_same_role_writes_no_event(acme_admin, acme_submitter):
    before = AuditEvent.objects.filter(action="role.changed").count()
    acme_admin.client.patch(
        f"/api/v1/memberships/{acme_submitter.user.membership.pk}/",
        {"role": "submitter"},
        format="json",
    )
    assert AuditEvent.objects.filter(action="role.changed").count() == before


def test_staff_roles_cannot_be_given_through_the_member_api(acme_admin, acme_submitter):
    response = acme_admin.client.patch(
        f"/api/v1/memberships/{acme_submitter.user.membership.pk}/",
        {"role": "consortium-admin"},
        format="json",
    )
    assert response.status_code == 400


def test_admin_cannot_change_another_organisations_roles(acme_admin, globex_submitter):
    response = acme_admin.client.patch(
        f"/api/v1/memberships/{globex_submitter.user.membership.pk}/",
        {"role": "member-admin"},
        format="json",
    )
    assert response.status_code == 404
    assert (
        globex_submitter.user.membership.__class__.objects.get(user=globex_submitter.user).role
        == "submitter"
    )


def test_reviewer_cannot_change_roles(acme_reviewer, acme_submitter):
    response = acme_reviewer.client.patch(
        f"/api/v1/memberships/{acme_submitter.user.membership.pk}/",
        {"role": "member-admin"},
        format="json",
    )
    assert response.status_code == 403
