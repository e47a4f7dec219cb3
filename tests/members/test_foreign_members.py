"""An organisation is (hub, slug). Foreign members — read-only mirrors of other hubs' members —
can never authenticate, hold credentials or memberships, register keys or be edited here."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.test import Client

from federation.errors import ConcordatError
from federation.transparency.models import AuditEvent
from members.actors import Actor
from members.mirrors import organisation_mirror
from members.models import Membership, Organisation, Role
from members.principals import principal_for_user
from members.services import (
    credential_create,
    membership_set,
    organisation_save,
    signing_key_register,
)
from tests.support.parties import signed_key_registration

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
PEER = "hub-b.example.org"


@pytest.fixture
def foreign_acme(acme):
    return organisation_mirror(hub=PEER, slug="acme", name="ACME (hub B)")


def test_local_organisations_are_of_this_hub(acme):
    assert acme.hub == "hub.test.concordat" and acme.is_local
    assert str(acme) == "acme"


def test_the_same_slug_on_another_hub_is_another_member(acme, foreign_acme):
    assert foreign_acme.pk != acme.pk
    assert (foreign_acme.hub, foreign_acme.slug, foreign_acme.is_local) == (PEER, "acme", False)
    assert str(foreign_acme) == f"acme@{PEER}"
    assert Organisation.objects.filter(slug="acme").count() == 2


def test_mirroring_is_idempotent_and_audited(foreign_acme):
    again = organisation_mirror(hub=PEER, slug="acme", name="ACME (hub B)")
    assert again.pk == foreign_acme.pk
    events = AuditEvent.objects.filter(action="organisation.mirrored")
    assert events.count() == 1
    assert events.get().data["hub"] == PEER
    renamed = organisation_mirror(hub=PEER, slug="acme", name="Acme Corp")
    assert renamed.name == "Acme Corp" and events.count() == 2


def test_this_hub_cannot_be_mirrored():
    with pytest.raises(ConcordatError) as refused:
        organisation_mirror(hub="hub.test.concordat", slug="acme", name="x")
    assert refused.value.code == "local_hub"
    assert not Organisation.objects.exists()


def test_a_foreign_member_cannot_be_given_users(foreign_acme, django_user_model):
    user = django_user_model.objects.create_user(username="mallory")
    with pytest.raises(ConcordatError) as refused:
        membership_set(user=user, organisation=foreign_acme, role=Role.SUBMITTER, actor=ACTOR)
    assert (refused.value.code, refused.value.status) == ("foreign_organisation", 409)
    assert not Membership.objects.filter(organisation=foreign_acme).exists()


def test_a_foreign_member_cannot_be_given_credentials(foreign_acme, django_user_model):
    user = django_user_model.objects.create_user(username="mallory")
    Membership.objects.create(user=user, organisation=foreign_acme, role=Role.SUBMITTER)  # forced
    with pytest.raises(ConcordatError) as refused:
        credential_create(holder=user, name="t", scopes=["read"], actor=ACTOR)
    assert refused.value.code == "foreign_organisation"


def test_a_foreign_member_cannot_register_keys_here(foreign_acme):
    signed = signed_key_registration(Ed25519PrivateKey.generate(), foreign_acme, hub=PEER)
    with pytest.raises(ConcordatError) as refused:
        signing_key_register(organisation=foreign_acme, actor=ACTOR, **signed)
    assert refused.value.code == "foreign_organisation"
    assert not foreign_acme.signing_keys.exists()


def test_a_foreign_member_cannot_be_edited_through_the_organisation_service(foreign_acme):
    foreign_acme.trusted = True
    with pytest.raises(ConcordatError) as refused:
        organisation_save(organisation=foreign_acme, actor=ACTOR)
    assert refused.value.code == "foreign_organisation"
    foreign_acme.refresh_from_db()
    assert not foreign_acme.trusted


def test_a_credential_forced_onto_a_foreign_member_by_sql_is_refused_at_request_time(
    acme_submitter, foreign_acme
):
    assert acme_submitter.client.get("/api/v1/entries/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE members_apicredential SET organisation_id = %s WHERE holder_id = %s",
            [foreign_acme.pk, acme_submitter.user.pk],
        )
    response = acme_submitter.client.get("/api/v1/entries/")
    assert response.status_code == 401
    assert "another hub" in response.json()["error"]["message"]


def test_a_user_moved_into_a_foreign_member_by_sql_cannot_act(acme_submitter, foreign_acme):
    with connection.cursor() as cursor:
        for table in ("members_membership", "members_apicredential"):
            cursor.execute(
                f"UPDATE {table} SET organisation_id = %s WHERE "  # noqa: S608 (fixed names)
                f"{'user_id' if table == 'members_membership' else 'holder_id'} = %s",
                [foreign_acme.pk, acme_submitter.user.pk],
            )
    assert acme_submitter.client.get("/api/v1/entries/").status_code == 401
    assert acme_submitter.submit().status_code == 401
    # nor through a web session: the principal of a foreign member has no capabilities
    browser = Client()
    browser.force_login(acme_submitter.user)
    assert browser.get("/api/v1/entries/").status_code == 403
    user = type(acme_submitter.user).objects.get(pk=acme_submitter.user.pk)
    assert principal_for_user(user).organisation == foreign_acme
    assert principal_for_user(user).capabilities == frozenset()


def test_the_admin_shows_foreign_members_read_only_and_offers_only_local_ones(
    consortium_admin, acme, foreign_acme
):
    browser = Client()
    browser.force_login(consortium_admin.user)
    url = f"/admin/members/organisation/{foreign_acme.pk}/change/"
    page = browser.get(url)
    assert page.status_code == 200
    assert PEER in page.content.decode()
    assert b'name="name"' not in page.content  # no editable fields
    posted = browser.post(url, {"name": "Hijacked", "status": "active"})
    assert posted.status_code == 403
    foreign_acme.refresh_from_db()
    assert foreign_acme.name == "ACME (hub B)"
    for form_url in ("/admin/members/membership/add/", "/admin/members/signingkey/add/"):
        choices = browser.get(form_url).context["adminform"].form.fields["organisation"].queryset
        assert list(choices) == [acme]
