"""Create (or update) a member organisation, a user with a role, optionally a signing key and an
API token. Prints JSON, so scripts (the demo, integration tests, operators) can use the token.

Every change goes through the same services as the admin and the API, so each writes its audit
event (actor ``{"type": "system", "id": "cli"}``): the organisation (``organisation.created``, or
``organisation.changed`` when ``--trusted`` marks it trusted), the user and their password
(``user.created`` / ``user.changed``), the role, the key and the token.

A key is registered only with its proof of possession (docs/signing.md, "Key registration"):
either the member's own signed registration (``--key-registration FILE``, the JSON
``{"registration": ..., "signature": ...}``), or the private key itself (``--signing-key FILE``, a
PEM Ed25519 private key), with which this command signs the registration.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from federation.errors import ConcordatError
from federation.signing import key_registration_document, sign_key_registration
from members.actors import Actor
from members.management.tokens import cli_token_name
from members.models import Organisation, Role
from members.principals import ROLE_CAPABILITIES
from members.services import (
    credential_create,
    membership_set,
    organisation_save,
    signing_key_register,
    user_save,
)


class Command(BaseCommand):
    help = "Create a member organisation user (and optionally a signing key and API token)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organisation slug.")
        parser.add_argument("--org-name", default="")
        parser.add_argument("--trusted", action="store_true", help="Auto-vet this member's adds.")
        parser.add_argument("--user", required=True)
        parser.add_argument("--password", default=None, help="Lets the user log in to the web UI.")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument(
            "--key-registration",
            metavar="FILE",
            help='Register the key of this signed registration (JSON {"registration", "signature"}).',
        )
        parser.add_argument(
            "--signing-key",
            metavar="FILE",
            help="Register the public half of this PEM Ed25519 private key, signing the proof here.",
        )
        parser.add_argument(
            "--token", action="store_true", help="Issue an API token with the role's scopes."
        )

    def handle(self, *args, **options):
        if options["key_registration"] and options["signing_key"]:
            raise CommandError("Give --key-registration or --signing-key, not both.")
        try:
            result = self.create(options)
        except ConcordatError as exc:  # everything rolled back, the refusal's audit event too
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps(result))

    def create(self, options) -> dict:
        actor = Actor.system("cli")
        with transaction.atomic():
            organisation = Organisation.objects.filter(
                hub=settings.HUB_ID, slug=options["org"]
            ).first()
            if organisation is None:
                organisation = Organisation(
                    slug=options["org"], name=options["org_name"] or options["org"].title()
                )
            if organisation.pk is None or (options["trusted"] and not organisation.trusted):
                organisation.trusted = organisation.trusted or options["trusted"]
                organisation_save(organisation=organisation, actor=actor)
            user_model = get_user_model()
            user = user_model.objects.filter(username=options["user"]).first()
            created = user is None
            if created:
                user = user_model(username=options["user"])
            if options["password"]:
                user.set_password(options["password"])
            elif created:
                user.set_unusable_password()
            if created or options["password"]:
                user_save(user=user, actor=actor, password_changed=bool(options["password"]))
            membership_set(user=user, organisation=organisation, role=options["role"], actor=actor)
            result = {
                "organisation": organisation.slug,
                "user": user.username,
                "role": options["role"],
            }
            envelope = _signed_registration(options, organisation)
            if envelope is not None:
                key = signing_key_register(
                    organisation=organisation,
                    registration=envelope.get("registration"),
                    signature=envelope.get("signature"),
                    actor=actor,
                    label="cli",
                )
                result["key_id"] = key.key_id
            if options["token"]:
                issued = credential_create(
                    holder=user,
                    name=cli_token_name(
                        user=user,
                        role=f"{options['role']} at {organisation.slug}",
                        command="create_member",
                    ),
                    scopes=sorted(ROLE_CAPABILITIES[options["role"]]),
                    actor=actor,
                )
                result["token"] = issued.token
        return result


def _signed_registration(options, organisation: Organisation) -> dict | None:
    if options["key_registration"]:
        try:
            envelope = json.loads(Path(options["key_registration"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the key registration: {exc}") from exc
        return envelope if isinstance(envelope, dict) else {}
    if options["signing_key"]:
        try:
            private_key = serialization.load_pem_private_key(
                Path(options["signing_key"]).read_bytes(), password=None
            )
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"cannot read the signing key: {exc}") from exc
        if not isinstance(private_key, Ed25519PrivateKey):
            raise CommandError("the signing key must be an Ed25519 private key")
        document = key_registration_document(
            hub=settings.HUB_ID,
            member=organisation.slug,
            public_key=private_key.public_key().public_bytes_raw(),
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        return {"registration": document, "signature": sign_key_registration(private_key, document)}
    return None
