"""What docs/signing.md promises about the signature's encoding and about resends: only the
canonical base64 spelling is accepted, and a resend is checked like a new submission (a key that
is not active answers key_not_active, even for bytes the hub already stored)."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from federation.contributions.models import Contribution
from members.actors import Actor
from members.services import signing_key_revoke

pytestmark = pytest.mark.django_db

# The base64 alphabet; the last data character of a 64-byte signature carries 4 unused bits.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _with_pad_bits(signature: str) -> str:
    """The same 64 bytes spelt with non-zero unused bits in the last data character."""
    last = _ALPHABET.index(signature[-3])
    spelt = signature[:-3] + _ALPHABET[last | 0b0001] + "=="
    assert spelt != signature and base64.b64decode(spelt) == base64.b64decode(signature)
    return spelt


def test_a_signature_with_non_zero_pad_bits_is_refused(acme_submitter):
    body = acme_submitter.signed()
    body["signature"] = _with_pad_bits(body["signature"])
    response = acme_submitter.client.post("/api/v1/contributions/", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["details"]["field"] == "signature"


@pytest.mark.parametrize("endpoint", ["/api/v1/contributions/", "/api/v1/contributions/bulk/"])
def test_a_signature_of_the_right_length_outside_ascii_is_invalid_not_a_500(
    acme_submitter, endpoint
):
    body = acme_submitter.signed()
    body["signature"] = "\u00e9" * 88
    payload = {"items": [body]} if endpoint.endswith("bulk/") else body
    response = acme_submitter.client.post(endpoint, payload, format="json")
    error = (
        response.json()["results"][0]["error"] if "items" in payload else response.json()["error"]
    )
    assert error["code"] == "invalid", response.json()
    assert error["message"] == "is not valid base64"
    assert error["details"]["field"] == "signature"


def test_a_resend_after_the_key_is_revoked_is_key_not_active(acme_submitter):
    body = acme_submitter.signed()
    first = acme_submitter.client.post("/api/v1/contributions/", body, format="json")
    assert first.status_code == 201
    signing_key_revoke(
        key=acme_submitter.signing_key,
        reason="rotated",
        actor=Actor.system("t"),
    )
    again = acme_submitter.client.post("/api/v1/contributions/", body, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "key_not_active"
    # The stored contribution is untouched and still readable.
    uuid = body["contribution"]["uuid"]
    assert Contribution.objects.filter(uuid=uuid).exists()
    assert acme_submitter.client.get(f"/api/v1/contributions/{uuid}/").status_code == 200


def test_created_at_before_not_before_is_key_not_active_on_every_resend(acme_submitter):
    key = acme_submitter.signing_key
    key.not_before = timezone.now() + timedelta(seconds=30)
    key.save()
    body = acme_submitter.signed()
    for _attempt in range(2):
        response = acme_submitter.client.post("/api/v1/contributions/", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "key_not_active"
