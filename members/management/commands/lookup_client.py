"""Create a lookup-only client: the account of a non-member platform and its lookup-only API
token (docs/private-lookup.md). Prints JSON with the token, shown once.

The account and the token are written by the same services as the admin (``user_save``,
``lookup_credential_create``), so each writes its audit event (actor ``{"type": "system",
"id": "cli"}``). Revoke a token in the admin (or ``credential_revoke``), as any other.
"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from federation.errors import ConcordatError
from members.actors import Actor
from members.services import lookup_credential_create, user_save


class Command(BaseCommand):
    help = "Create a lookup-only client (a non-member platform) and print its token."

    def add_arguments(self, parser):
        parser.add_argument(
            "--user", required=True, help="The platform's account (created if new)."
        )
        parser.add_argument("--name", required=True, help="A name for the token.")
        parser.add_argument(
            "--daily-limit",
            type=int,
            default=None,
            help="Evaluations per UTC day (default: LOOKUP_DAILY_EVALUATIONS).",
        )

    def handle(self, *args, **options):
        actor = Actor.system("cli")
        try:
            with transaction.atomic():
                user_model = get_user_model()
                user = user_model.objects.filter(username=options["user"]).first()
                if user is None:
                    user = user_model(username=options["user"])
                    user.set_unusable_password()
                    user_save(user=user, actor=actor)
                issued = lookup_credential_create(
                    holder=user,
                    name=options["name"],
                    actor=actor,
                    daily_limit=options["daily_limit"],
                )
        except ConcordatError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            json.dumps(
                {
                    "user": user.get_username(),
                    "token": issued.token,
                    "daily_limit": issued.credential.lookup_daily_limit,
                }
            )
        )
