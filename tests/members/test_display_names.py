"""Names shown to other members (organisation names, key labels, credential and incident names)
refuse invisible and text-direction characters, through the API, the admin and the services,
with one shared validator."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from federation.errors import InvalidInput
from federation.vetting.models import Incident
from members.actors import Actor
from members.models import ApiCredential, Organisation, SigningKey
from members.services import organisation_save
from members.validators import unsafe_characters, validate_display_name
from tests.support.parties import raw_public_key

pytestmark = pytest.mark.django_db

# RLO, LRI, PDI, ZWSP, ZWJ, word joiner, BOM, soft hyphen, line separator, NUL, newline.
UNSAFE = ["\u202e", "\u2066", "\u2069", "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad",
          "\u2028", "\x00", "\n"]  # fmt: skip


@pytest.mark.parametrize("char", UNSAFE)
def test_the_validator_refuses_each_invisible_or_direction_character(char):
    with pytest.raises(ValidationError) as raised:
        validate_display_name(f"acme{char}corp")
    assert raised.value.code == "unsafe_characters"
    assert f"U+{ord(char):04X}" in raised.value.messages[0]


def test_the_validator_accepts_ordinary_names_in_any_script():
    for name in ["ACME Trust & Safety", "Société Générale", "Ελληνικά", "日本語 チーム", "עברית"]:
        validate_display_name(name)
        assert unsafe_characters(name) == []


def _new_key_b64() -> str:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return base64.b64encode(raw_public_key(Ed25519PrivateKey.generate())).decode()


def test_api_refuses_a_key_label_with_a_bidi_override(acme_admin):
    response = acme_admin.client.post(
        "/api/v1/keys/", {"public_key": _new_key_b64(), "label": "prod\u202egpj"}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "U+202E" in response.json()["error"]["details"]["label"][0]
    assert not SigningKey.objects.filter(label__contains="\u202e").exists()


def test_api_refuses_a_credential_name_with_a_zero_width_space(acme_admin):
    response = acme_admin.client.post(
        "/api/v1/credentials/", {"name": "ci\u200b", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "U+200B" in response.json()["error"]["details"]["name"][0]
    assert not ApiCredential.objects.filter(name__contains="\u200b").exists()


def test_api_refuses_an_incident_name_with_a_bidi_isolate(consortium_admin):
    response = consortium_admin.client.post(
        "/api/v1/incidents/", {"name": "attack\u2066 at X"}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "U+2066" in response.json()["error"]["details"]["name"][0]
    assert not Incident.objects.exists()


def test_the_service_refuses_an_organisation_name_with_a_bidi_override():
    with pytest.raises(InvalidInput) as raised:
        organisation_save(
            organisation=Organisation(slug="evil", name="Evil\u202eCorp"),
            actor=Actor.system("test"),
        )
    assert raised.value.code == "unsafe_characters"
    assert not Organisation.objects.filter(slug="evil").exists()


def _admin_browser(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def test_admin_form_refuses_an_organisation_name_with_a_zero_width_joiner(consortium_admin):
    response = _admin_browser(consortium_admin.user).post(
        "/admin/members/organisation/add/",
        {"slug": "initech", "name": "Ini\u200dtech", "status": "active"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert "U+200D" in response.content.decode()
    assert not Organisation.objects.filter(slug="initech").exists()


def test_admin_form_refuses_a_credential_name_with_a_bidi_override(
    consortium_admin, acme_submitter
):
    response = _admin_browser(consortium_admin.user).post(
        "/admin/members/apicredential/add/",
        {"holder": acme_submitter.user.pk, "name": "ci\u202e", "scopes": ["read"]},
    )
    assert response.status_code == 200
    assert "U+202E" in response.content.decode()
    assert not ApiCredential.objects.filter(name__contains="\u202e").exists()


def test_admin_form_refuses_an_incident_name_with_a_zero_width_space(consortium_admin):
    response = _admin_browser(consortium_admin.user).post(
        "/admin/federation/incident/add/", {"name": "x\u200by", "description": ""}
    )
    assert response.status_code == 200
    assert "U+200B" in response.content.decode()
    assert not Incident.objects.exists()


def test_admin_form_refuses_a_key_label_with_a_right_to_left_override(consortium_admin, acme):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    response = _admin_browser(consortium_admin.user).post(
        "/admin/members/signingkey/add/",
        {
            "organisation": acme.pk,
            "public_key": raw_public_key(Ed25519PrivateKey.generate()).hex(),
            "label": "hsm\u202e",
        },
    )
    assert response.status_code == 200
    assert "U+202E" in response.content.decode()
    assert not SigningKey.objects.filter(organisation=acme).exists()
