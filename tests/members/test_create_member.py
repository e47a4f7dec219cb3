"""`manage.py create_member` registers keys only with a proof of possession: it signs one itself
from a private key file, or takes the member's own signed registration."""

import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.management import call_command
from django.core.management.base import CommandError

from federation.transparency.models import AuditEvent
from members.mirrors import organisation_mirror
from members.models import ApiCredential, Organisation, SigningKey, key_id_for
from tests.support.parties import raw_public_key, signed_key_registration

pytestmark = pytest.mark.django_db


def create_member(*args: str) -> dict:
    out = StringIO()
    call_command("create_member", "--org", "acme", "--user", "alice", "--role", "submitter",
                 *args, stdout=out)  # fmt: skip
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_a_private_key_file_is_registered_with_a_proof_the_command_signs(tmp_path):
    private_key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = create_member("--signing-key", str(path))
    key = SigningKey.objects.get(key_id=result["key_id"])
    assert key.created_by is None  # registered by the hub itself (the cli actor), not a user
    assert key.public_key_bytes == raw_public_key(private_key)
    Ed25519PublicKey.from_public_bytes(key.public_key_bytes).verify(
        bytes(key.registration_signature), key.registration.encode()
    )
    assert json.loads(key.registration)["member"] == "acme"


def test_a_members_signed_registration_file_is_registered(tmp_path):
    organisation = Organisation.objects.create(slug="acme", name="Acme")
    private_key = Ed25519PrivateKey.generate()
    path = tmp_path / "registration.json"
    path.write_text(json.dumps(signed_key_registration(private_key, organisation)))
    result = create_member("--key-registration", str(path))
    assert result["key_id"] == key_id_for(raw_public_key(private_key))


def test_a_forged_registration_file_is_refused_and_nothing_is_created(tmp_path):
    organisation = Organisation(slug="acme", name="Acme")  # the object only, for the helper
    signed = signed_key_registration(Ed25519PrivateKey.generate(), organisation)
    signed["signature"] = signed_key_registration(Ed25519PrivateKey.generate(), organisation)[
        "signature"
    ]
    path = tmp_path / "registration.json"
    path.write_text(json.dumps(signed))
    with pytest.raises(CommandError, match="invalid_proof"):
        create_member("--key-registration", str(path))
    assert not Organisation.objects.exists() and not SigningKey.objects.exists()
    assert not AuditEvent.objects.exists()  # the command's one transaction rolled back


def test_the_command_uses_the_local_member_when_a_foreign_one_shares_its_slug():
    mirror = organisation_mirror(hub="hub-b.example.org", slug="acme", name="ACME (B)")
    create_member()
    local = Organisation.objects.get(slug="acme", hub="hub.test.concordat")
    assert local.pk != mirror.pk
    assert local.memberships.get().user.username == "alice"


def test_a_token_made_by_the_command_is_named_after_its_holder_role_and_command():
    result = create_member("--token")
    credential = ApiCredential.objects.get(prefix=result["token"].split("_")[1])
    assert credential.name.startswith("alice (submitter at acme): manage.py create_member, 20")


def test_a_token_made_by_create_staff_is_named_after_its_holder_and_role():
    out = StringIO()
    call_command("create_staff", "--user", "olga", "--role", "auditor", "--token", stdout=out)
    token = json.loads(out.getvalue().strip().splitlines()[-1])["token"]
    credential = ApiCredential.objects.get(prefix=token.split("_")[1])
    assert credential.name.startswith("olga (auditor): manage.py create_staff, 20")
