"""Create a hub staff user (consortium admin or auditor). Prints JSON with an API token if asked.

The account (with its staff and superuser flags and password), the staff role and the token are
each written by the same services as the admin, so each writes its audit event (actor
``{"type": "system", "id": "cli"}``).
"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from federation.errors import ConcordatError
from members.actors import Actor
from members.management.tokens import cli_token_name
from members.models import StaffRoleName
from members.principals import ROLE_CAPABILITIES
from members.services import credential_create, staff_role_set, user_save


class Command(BaseCommand):
    help = "Create a consortium admin or auditor."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--password", default=None)
        parser.add_argument("--role", required=True, choices=StaffRoleName.values)
        parser.add_argument(
            "--token", action="store_true", help="Issue an API token with the role's scopes."
        )
        parser.add_argument(
            "--scopes",
            default=None,
            help="With --token: only these of the role's scopes, comma-separated "
            "(e.g. metrics, for a Prometheus scraper).",
        )

    def handle(self, *args, **options):
        try:
            result = self._create(options)
        except ConcordatError as exc:  # everything rolled back (a scope the role lacks, …)
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps(result))

    def _create(self, options) -> dict:
        actor = Actor.system("cli")
        with transaction.atomic():
            user_model = get_user_model()
            user = user_model.objects.filter(username=options["user"]).first()
            if user is None:
                user = user_model(username=options["user"])
                user.set_unusable_password()
            # Both log in through the admin login page; only consortium admins administer.
            user.is_staff = True
            user.is_superuser = options["role"] == StaffRoleName.CONSORTIUM_ADMIN
            if options["password"]:
                user.set_password(options["password"])
            user_save(user=user, actor=actor, password_changed=bool(options["password"]))
            staff_role_set(user=user, role=options["role"], actor=actor)
            result = {"user": user.username, "role": options["role"]}
            if options["token"]:
                scopes = sorted(ROLE_CAPABILITIES[options["role"]])
                if options["scopes"]:
                    scopes = [scope.strip() for scope in options["scopes"].split(",")]
                issued = credential_create(
                    holder=user,
                    name=cli_token_name(user=user, role=options["role"], command="create_staff"),
                    scopes=scopes,
                    actor=actor,
                )
                result["token"] = issued.token
        return result
