"""Create a hub staff user (consortium admin or auditor). Prints JSON with an API token if asked."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from members.models import StaffRoleName
from members.principals import ROLE_CAPABILITIES, system_actor
from members.services import credential_create, staff_role_set


class Command(BaseCommand):
    help = "Create a consortium admin or auditor."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--password", default=None)
        parser.add_argument("--role", required=True, choices=StaffRoleName.values)
        parser.add_argument(
            "--token", action="store_true", help="Issue an API token with the role's scopes."
        )

    def handle(self, *args, **options):
        actor = system_actor("cli")
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=options["user"])
            # Both log in through the admin login page; only consortium admins administer.
            user.is_staff = True
            user.is_superuser = options["role"] == StaffRoleName.CONSORTIUM_ADMIN
            if options["password"]:
                user.set_password(options["password"])
            user.save()
            staff_role_set(user=user, role=options["role"], actor=actor)
            result = {"user": user.username, "role": options["role"]}
            if options["token"]:
                issued = credential_create(
                    holder=user,
                    name="cli",
                    scopes=sorted(ROLE_CAPABILITIES[options["role"]]),
                    actor=actor,
                )
                result["token"] = issued.token
        self.stdout.write(json.dumps(result))
