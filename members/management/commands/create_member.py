"""Create (or update) a member organisation, a user with a role, optionally a signing key and an
API token. Prints JSON, so scripts (the demo, integration tests, operators) can use the token."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from members.models import Organisation, Role
from members.principals import ROLE_CAPABILITIES, system_actor
from members.services import (
    credential_create,
    decode_public_key,
    membership_set,
    signing_key_register,
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
            "--public-key", help="Register this Ed25519 public key (hex or base64)."
        )
        parser.add_argument(
            "--token", action="store_true", help="Issue an API token with the role's scopes."
        )

    def handle(self, *args, **options):
        actor = system_actor("cli")
        with transaction.atomic():
            organisation, _ = Organisation.objects.get_or_create(
                slug=options["org"],
                defaults={"name": options["org_name"] or options["org"].title()},
            )
            if options["trusted"] and not organisation.trusted:
                organisation.trusted = True
                organisation.save(update_fields=["trusted"])
            user, created = get_user_model().objects.get_or_create(username=options["user"])
            if options["password"]:
                user.set_password(options["password"])
                user.save()
            elif created:
                user.set_unusable_password()
                user.save()
            membership_set(user=user, organisation=organisation, role=options["role"], actor=actor)
            result = {
                "organisation": organisation.slug,
                "user": user.username,
                "role": options["role"],
            }
            if options["public_key"]:
                key = signing_key_register(
                    organisation=organisation,
                    public_key=decode_public_key(options["public_key"]),
                    actor=actor,
                    label="cli",
                )
                result["key_id"] = key.key_id
            if options["token"]:
                issued = credential_create(
                    holder=user,
                    name="cli",
                    scopes=sorted(ROLE_CAPABILITIES[options["role"]]),
                    actor=actor,
                )
                result["token"] = issued.token
        self.stdout.write(json.dumps(result))
