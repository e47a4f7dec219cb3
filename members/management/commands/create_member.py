"""Create (or update) a member organisation, a user with a role, optionally a signing key and an
API token. Prints JSON, so scripts (the demo, integration tests, operators) can use the token.

Every change goes through the same services as the admin and the API, so each writes its audit
event (actor ``{"type": "system", "id": "cli"}``): the organisation (``organisation.created``, or
``organisation.changed`` when ``--trusted`` marks it trusted), the user and their password
(``user.created`` / ``user.changed``), the role, the key and the token.
"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from members.actors import Actor
from members.models import Organisation, Role
from members.principals import ROLE_CAPABILITIES
from members.services import (
    credential_create,
    decode_public_key,
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
            "--public-key", help="Register this Ed25519 public key (hex or base64)."
        )
        parser.add_argument(
            "--token", action="store_true", help="Issue an API token with the role's scopes."
        )

    def handle(self, *args, **options):
        actor = Actor.system("cli")
        with transaction.atomic():
            organisation = Organisation.objects.filter(slug=options["org"]).first()
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
