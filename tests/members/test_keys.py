"""Member admins register, rotate and revoke their organisation's Ed25519 signing keys."""

import base64
import hashlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from federation.transparency.models import AuditEvent
from members.models import SigningKey, key_id_for
from tests.parties import raw_public_key

pytestmark = pytest.mark.django_db


def test_key_id_is_hex_of_first_16_bytes_of_sha256_of_the_raw_key():
    raw = bytes(range(32))
    assert key_id_for(raw) == hashlib.sha256(raw).digest()[:16].hex()
    assert len(key_id_for(raw)) == 32


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_admin_registers_a_key_and_it_is_audited(acme_admin, encoding):
    raw = raw_public_key(Ed25519PrivateKey.generate())
    text = raw.hex() if encoding == "hex" else base64.b64encode(raw).decode()
    response = acme_admin.client.post(
        "/api/v1/keys/", {"public_key": text, "label": "hsm-2"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["key_id"] == key_id_for(raw)
    assert response.json()["public_key"] == base64.b64encode(raw).decode()
    event = AuditEvent.objects.get(action="key.registered", object_id=key_id_for(raw))
    assert event.organisation == "acme"
    assert event.actor_id.startswith("cc_")


def test_several_active_keys_allow_rotation_without_a_gap(acme_admin):
    new_private = Ed25519PrivateKey.generate()
    acme_admin.client.post(
        "/api/v1/keys/", {"public_key": raw_public_key(new_private).hex()}, format="json"
    )
    old_key = acme_admin.signing_key
    with_old = acme_admin.submit()
    acme_admin.private_key = new_private
    acme_admin.signing_key = SigningKey.objects.get(key_id=key_id_for(raw_public_key(new_private)))
    with_new = acme_admin.submit()
    assert (with_old.status_code, with_new.status_code) == (201, 201)
    revoke = acme_admin.client.post(
        f"/api/v1/keys/{old_key.key_id}/revoke/", {"reason": "rotated"}, format="json"
    )
    assert revoke.status_code == 200
    assert revoke.json()["revoke_reason"] == "rotated"
    assert acme_admin.submit().status_code == 201


def test_revocation_has_reason_and_effective_time_and_is_audited(acme_admin):
    effective = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    response = acme_admin.client.post(
        f"/api/v1/keys/{acme_admin.signing_key.key_id}/revoke/",
        {"reason": "compromised", "effective_at": effective.isoformat()},
        format="json",
    )
    assert response.status_code == 200, response.json()
    key = SigningKey.objects.get(pk=acme_admin.signing_key.pk)
    assert key.revoked_at == effective
    event = AuditEvent.objects.get(action="key.revoked")
    assert event.data["reason"] == "compromised"
    assert event.data["effective_at"] == effective.isoformat()
    assert acme_admin.submit().json()["error"]["code"] == "key_not_active"


def test_revocation_needs_a_reason_and_cannot_be_in_the_future(acme_admin):
    url = f"/api/v1/keys/{acme_admin.signing_key.key_id}/revoke/"
    assert acme_admin.client.post(url, {"reason": ""}, format="json").status_code == 400
    future = (timezone.now() + timedelta(days=1)).isoformat()
    response = acme_admin.client.post(url, {"reason": "x", "effective_at": future}, format="json")
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="key.revoked").exists()


def test_registering_a_key_twice_is_a_409(acme_admin, globex_admin):
    text = acme_admin.signing_key.public_key_bytes.hex()
    response = globex_admin.client.post("/api/v1/keys/", {"public_key": text}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "key_exists"


@pytest.mark.parametrize("text", ["00" * 31, "zz" * 32, "AAAA", "a" * 64 + "b"])
def test_malformed_public_keys_are_refused(acme_admin, text):
    response = acme_admin.client.post("/api/v1/keys/", {"public_key": text}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_key", "invalid"}


def test_admin_cannot_see_or_revoke_another_organisations_key(acme_admin, globex_admin):
    listed = acme_admin.client.get("/api/v1/keys/").json()["results"]
    assert {k["member"] for k in listed} == {"acme"}
    response = acme_admin.client.post(
        f"/api/v1/keys/{globex_admin.signing_key.key_id}/revoke/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert SigningKey.objects.get(pk=globex_admin.signing_key.pk).revoked_at is None


def test_submitter_cannot_manage_keys(acme_submitter):
    raw = raw_public_key(Ed25519PrivateKey.generate())
    response = acme_submitter.client.post("/api/v1/keys/", {"public_key": raw.hex()}, format="json")
    assert response.status_code == 403


# Small-order points of edwards25519 (the identity, the point of order 2, and two of order 4),
# and a non-canonical encoding (y = p, which is 0 mod p). Signatures under a small-order key
# verify over any message, so such a key would prove nothing about who signed.
WEAK_KEYS = [
    "01" + "00" * 31,
    "ec" + "ff" * 30 + "7f",
    "00" * 32,
    "00" * 31 + "80",
    "ed" + "ff" * 30 + "7f",
]


@pytest.mark.parametrize("weak", WEAK_KEYS)
def test_small_order_and_non_canonical_keys_are_refused(acme_admin, weak):
    response = acme_admin.client.post("/api/v1/keys/", {"public_key": weak}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_key"
    assert (
        not SigningKey.objects.filter(organisation__slug="acme", label="")
        .exclude(key_id=acme_admin.signing_key.key_id)
        .exists()
    )
    assert not AuditEvent.objects.filter(
        action="key.registered", data__public_key=base64.b64encode(bytes.fromhex(weak)).decode()
    ).exists()
