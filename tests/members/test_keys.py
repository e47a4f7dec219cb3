"""Member admins register (with proof of possession), rotate and revoke their organisation's
Ed25519 signing keys."""

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.utils import timezone

from federation.canonical import canonical_bytes
from federation.signing import format_timestamp, sign_key_registration
from federation.transparency.models import AuditEvent
from members.models import SigningKey, key_id_for
from tests.support.parties import raw_public_key, signed_key_registration

pytestmark = pytest.mark.django_db


def register(party, body: dict):
    return party.client.post("/api/v1/keys/", body, format="json")


def test_key_id_is_hex_of_first_16_bytes_of_sha256_of_the_raw_key():
    raw = bytes(range(32))
    assert key_id_for(raw) == hashlib.sha256(raw).digest()[:16].hex()
    assert len(key_id_for(raw)) == 32


def test_admin_registers_a_key_with_its_proof_kept_verbatim_and_audited(acme_admin):
    private_key = Ed25519PrivateKey.generate()
    raw = raw_public_key(private_key)
    signed = signed_key_registration(private_key, acme_admin.organisation)
    response = register(acme_admin, {**signed, "label": "hsm-2"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key_id"] == key_id_for(raw)
    assert body["public_key"] == base64.b64encode(raw).decode()
    assert (body["hub"], body["member"]) == ("hub.test.concordat", "acme")
    assert body["registration"] == signed["registration"]
    assert body["registration_signature"] == signed["signature"]
    key = SigningKey.objects.get(key_id=key_id_for(raw))
    assert key.created_by == acme_admin.user  # the actor's user
    assert key.registration.encode() == canonical_bytes(signed["registration"])
    assert base64.b64encode(bytes(key.registration_signature)).decode() == signed["signature"]
    event = AuditEvent.objects.get(action="key.registered", object_id=key_id_for(raw))
    assert event.organisation == "acme"
    assert event.actor_id.startswith("cc_")
    assert event.data["registration"] == key.registration
    assert event.data["registration_signature"] == signed["signature"]


def test_the_stored_proof_verifies_for_anyone_with_the_public_key(acme_admin):
    key = acme_admin.signing_key
    public_key = Ed25519PublicKey.from_public_bytes(key.public_key_bytes)
    public_key.verify(bytes(key.registration_signature), key.registration.encode())
    document = json.loads(key.registration)
    assert document["kind"] == "concordat.key" and document["member"] == "acme"
    assert document["key_id"] == key.key_id


def test_several_active_keys_allow_rotation_without_a_gap(acme_admin):
    new_private = Ed25519PrivateKey.generate()
    added = register(acme_admin, signed_key_registration(new_private, acme_admin.organisation))
    assert added.status_code == 201, added.json()
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


def assert_refused(party, body, code: str, field: str):
    keys = SigningKey.objects.count()
    response = register(party, body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["details"]["field"]) == (code, field), error
    assert SigningKey.objects.count() == keys
    event = AuditEvent.objects.filter(action="key.rejected").latest("pk")
    assert (event.data["code"], event.data["field"]) == (code, field)
    assert event.organisation == party.organisation.slug
    assert event.actor_id.startswith("cc_")
    assert len(json.dumps(event.data)) < 2_000  # bounded evidence, whatever was sent
    return event


def test_a_public_key_alone_is_refused_and_audited(acme_admin):
    raw = raw_public_key(Ed25519PrivateKey.generate())
    event = assert_refused(
        acme_admin, {"public_key": raw.hex()}, code="invalid_proof", field="registration"
    )
    assert event.data["signature"] is None


def test_someone_elses_public_key_cannot_be_registered_so_its_owner_is_not_blocked(
    acme_admin, globex_admin
):
    acme_private = Ed25519PrivateKey.generate()  # acme's new key, not yet registered
    acme_signed = signed_key_registration(acme_private, acme_admin.organisation)
    # globex replays acme's own proof: it names acme
    assert_refused(globex_admin, acme_signed, code="proof_mismatch", field="member")
    # globex names itself, but cannot sign with acme's key
    forged = signed_key_registration(acme_private, globex_admin.organisation)
    forged["signature"] = sign_key_registration(globex_admin.private_key, forged["registration"])
    event = assert_refused(globex_admin, forged, code="invalid_proof", field="signature")
    assert event.data["canonical"] == canonical_bytes(forged["registration"]).decode()
    assert event.data["key_id"] == key_id_for(raw_public_key(acme_private))
    # so the key's owner still registers it
    assert register(acme_admin, acme_signed).status_code == 201


def test_registering_a_key_twice_is_a_409(acme_admin):
    again = signed_key_registration(acme_admin.private_key, acme_admin.organisation)
    response = register(acme_admin, again)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "key_exists"


def _resigned(private_key, signed: dict, **changes) -> dict:
    document = {**signed["registration"], **changes}
    return {"registration": document, "signature": sign_key_registration(private_key, document)}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"hub": "another.hub"}, "proof_mismatch", "hub"),
        ({"member": "globex"}, "proof_mismatch", "member"),
        ({"key_id": "0" * 32}, "proof_mismatch", "key_id"),
        ({"kind": "concordat.contribution"}, "invalid_proof", "kind"),
        ({"v": 2}, "invalid_proof", "v"),
        ({"label": "unsigned-for"}, "invalid_proof", "registration"),
        ({"created_at": "2026-01-31T12:00:00+00:00"}, "invalid_proof", "created_at"),
        ({"created_at": "2020-01-31T12:00:00Z"}, "clock_skew", "created_at"),
        (
            {"public_key": "not base64 at all, but 44 characters long!!"},
            "invalid_proof",
            "public_key",
        ),
    ],
)
def test_a_registration_that_does_not_prove_its_binding_is_refused(acme_admin, change, code, field):
    private_key = Ed25519PrivateKey.generate()
    signed = signed_key_registration(private_key, acme_admin.organisation)
    assert_refused(acme_admin, _resigned(private_key, signed, **change), code, field)


def test_a_public_key_in_hex_is_not_the_signed_form(acme_admin):
    private_key = Ed25519PrivateKey.generate()
    signed = signed_key_registration(private_key, acme_admin.organisation)
    hexed = _resigned(private_key, signed, public_key=raw_public_key(private_key).hex())
    assert_refused(acme_admin, hexed, code="invalid_proof", field="public_key")


@pytest.mark.parametrize("length", [31, 33])
def test_a_public_key_of_44_base64_characters_but_not_32_bytes_is_refused(acme_admin, length):
    # 44 characters of canonical padded base64 hold 31, 32 or 33 bytes; only 32 are a key.
    raw = Ed25519PrivateKey.generate().private_bytes_raw()[:length] + b"\x01" * (length - 32)
    private_key = Ed25519PrivateKey.generate()
    signed = signed_key_registration(private_key, acme_admin.organisation)
    body = _resigned(
        private_key, signed, public_key=base64.b64encode(raw).decode(), key_id=key_id_for(raw)
    )
    assert len(body["registration"]["public_key"]) == 44
    event = assert_refused(acme_admin, body, code="invalid_proof", field="public_key")
    assert event.data["public_key"] == body["registration"]["public_key"]


def test_a_registration_changed_after_signing_is_refused(acme_admin):
    private_key = Ed25519PrivateKey.generate()
    signed = signed_key_registration(private_key, acme_admin.organisation)
    later = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    signed["registration"]["created_at"] = format_timestamp(later)
    assert_refused(acme_admin, signed, code="invalid_proof", field="signature")


@pytest.mark.parametrize("signature", [None, "", "A" * 88, "AAAA", 5, "=" * 88])
def test_a_missing_or_malformed_signature_is_refused(acme_admin, signature):
    signed = signed_key_registration(Ed25519PrivateKey.generate(), acme_admin.organisation)
    body = {"registration": signed["registration"]}
    if signature is not None:
        body["signature"] = signature
    assert_refused(acme_admin, body, code="invalid_proof", field="signature")


def test_evidence_of_a_refused_registration_is_bounded(acme_admin):
    body = {
        "registration": {"kind": "x" * 50_000, "key_id": "\u0000" * 10, "public_key": "y" * 5000},
        "signature": "z" * 150,
    }
    event = assert_refused(acme_admin, body, code="invalid_proof", field="created_at")
    assert event.data["key_id"] is None and event.data["public_key"] is None


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


def test_admin_cannot_see_or_revoke_another_organisations_key(acme_admin, globex_admin):
    listed = acme_admin.client.get("/api/v1/keys/").json()["results"]
    assert {k["member"] for k in listed} == {"acme"}
    response = acme_admin.client.post(
        f"/api/v1/keys/{globex_admin.signing_key.key_id}/revoke/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert SigningKey.objects.get(pk=globex_admin.signing_key.pk).revoked_at is None


def test_submitter_cannot_manage_keys(acme_submitter):
    signed = signed_key_registration(Ed25519PrivateKey.generate(), acme_submitter.organisation)
    assert register(acme_submitter, signed).status_code == 403


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


# With the identity as public key, R = identity and S = 0 is a signature over every message.
UNIVERSAL_SIGNATURE = base64.b64encode(bytes.fromhex("01" + "00" * 63)).decode()


@pytest.mark.parametrize("weak", SMALL_ORDER_KEYS + NON_CANONICAL_KEYS)
def test_small_order_and_non_canonical_keys_are_refused_before_any_signature_check(
    acme_admin, weak
):
    # A signature under a small-order key can verify over any message, so a "proof" under it
    # would prove nothing about who signed: the key is refused as a key.
    raw = bytes.fromhex(weak)
    signed = signed_key_registration(Ed25519PrivateKey.generate(), acme_admin.organisation)
    document = {
        **signed["registration"],
        "public_key": base64.b64encode(raw).decode(),
        "key_id": key_id_for(raw),
    }
    body = {"registration": document, "signature": UNIVERSAL_SIGNATURE}
    assert_refused(acme_admin, body, code="invalid_key", field="public_key")
