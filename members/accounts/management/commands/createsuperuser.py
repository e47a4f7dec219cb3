"""``manage.py createsuperuser``: a consortium admin, created and audited like ``create_staff``.

Interactive by default (username, then the password twice); with ``--noinput`` the username comes
from ``--username`` and the password from ``DJANGO_SUPERUSER_PASSWORD`` (Django's convention).
"""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from members.accounts.management.commands._prompts import read_new_password
from members.actors import Actor
from members.models import StaffRoleName
from members.services import staff_role_set, user_save


class Command(BaseCommand):
    help = "Create a consortium admin (a superuser), writing its audit events."

    def add_arguments(self, parser):
        parser.add_argument("--username")
        parser.add_argument("--email", default="")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args, **options):
        user_model = get_user_model()
        username = options["username"]
        if not username:
            if not options["interactive"]:
                raise CommandError("--username is required with --noinput.")
            username = input("Username: ").strip()
        if not username:
            raise CommandError("A username is required.")
        if user_model.objects.filter(username=username).exists():
            raise CommandError(f"User {username!r} exists already; nothing was changed.")
        user = user_model(
            username=username, email=options["email"], is_staff=True, is_superuser=True
        )
        if options["interactive"]:
            password = read_new_password(user)
        else:
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
            if not password:
                raise CommandError("Set DJANGO_SUPERUSER_PASSWORD with --noinput.")
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        user.set_password(password)
        actor = Actor.system("cli")
        with transaction.atomic():
            user_save(user=user, actor=actor, password_changed=True)
            staff_role_set(user=user, role=StaffRoleName.CONSORTIUM_ADMIN, actor=actor)
        self.stdout.write(f"Consortium admin {username!r} created (audited).")
