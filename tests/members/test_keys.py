"""Member admins register, rotate and revoke their organisation's Ed25519 signing keys."""

import base64
import hashlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from federation.errors import InvalidInput
from federation.transparency.models import AuditEvent
from members.models import SigningKey, key_id_for
from members.services import decode_public_key
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


# Edwards25519 arithmetic (RFC 8032 §5.1), just enough to derive its eight small-order points.
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _sqrt(a: int) -> int | None:
    root = pow(a, (_P + 3) // 8, _P)
    if root * root % _P != a % _P:
        root = root * _SQRT_M1 % _P
    return root if root * root % _P == a % _P else None


def _add(first: tuple[int, int], second: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = first, second
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, -1, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P
    return x3, y3


def _encode(point: tuple[int, int]) -> str:
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little").hex()


def _small_order_points() -> list[str]:
    """The torsion subgroup: the multiples of a point T of order 8. Doubling T gives a point with
    y = 0, so y(T)^2 = -x(T)^2 and, on the curve, d x^4 - 2 x^2 - 1 = 0."""
    for x_squared in ((1 + s) * pow(_D, -1, _P) % _P for s in (_sqrt(1 + _D), -_sqrt(1 + _D))):
        x = _sqrt(x_squared)
        if x is not None:
            break
    torsion = (x, x * _SQRT_M1 % _P)
    assert (
        -(torsion[0] ** 2) + torsion[1] ** 2 - 1 - _D * torsion[0] ** 2 * torsion[1] ** 2
    ) % _P == 0
    points, point = [], (0, 1)
    for _ in range(8):
        points.append(_encode(point))
        point = _add(point, torsion)
    assert point == (0, 1)  # 8T is the identity
    return points


SMALL_ORDER_KEYS = _small_order_points()
# Non-canonical encodings (y >= p): of y = 0 (a point of order 4) and of y = 1 (the identity).
NON_CANONICAL_KEYS = ["ed" + "ff" * 30 + "7f", "ee" + "ff" * 30 + "7f"]


def test_the_derived_small_order_points_are_the_eight_known_ones():
    assert len(set(SMALL_ORDER_KEYS)) == 8
    assert {
        "01" + "00" * 31,  # the identity
        "ec" + "ff" * 30 + "7f",  # (0, -1), of order 2
        "00" * 32,  # (sqrt(-1), 0) and its negation, of order 4
        "00" * 31 + "80",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # of order 8
    } <= set(SMALL_ORDER_KEYS)


@pytest.mark.parametrize("weak", SMALL_ORDER_KEYS + NON_CANONICAL_KEYS)
def test_small_order_and_non_canonical_keys_are_refused(acme_admin, weak):
    # A signature under a small-order key can verify over any message (under the identity,
    # 01 00..00 followed by 32 zero bytes does), so it would prove nothing about who signed.
    keys, events = SigningKey.objects.count(), AuditEvent.objects.count()
    for text in (weak, base64.b64encode(bytes.fromhex(weak)).decode()):
        response = acme_admin.client.post("/api/v1/keys/", {"public_key": text}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_key"
    assert SigningKey.objects.count() == keys
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("weak", SMALL_ORDER_KEYS[:2] + NON_CANONICAL_KEYS[:1])
def test_decode_public_key_refuses_weak_keys_for_the_admin_and_create_member_too(weak):
    with pytest.raises(InvalidInput) as refused:
        decode_public_key(weak)
    assert refused.value.code == "invalid_key"
    good = raw_public_key(Ed25519PrivateKey.generate())
    assert decode_public_key(good.hex()) == good
