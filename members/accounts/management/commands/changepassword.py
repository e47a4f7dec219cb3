"""``manage.py changepassword``: Django's command, but the change writes its audit event."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from members.accounts.management.commands._prompts import read_new_password
from members.actors import Actor
from members.services import user_save


class Command(BaseCommand):
    help = "Change a user's password, writing a user.changed audit event."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?")

    def handle(self, *args, **options):
        user_model = get_user_model()
        username = options["username"] or input("Username: ").strip()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}; nothing was changed.")
        user.set_password(read_new_password(user, prompt=f"New password for {username}: "))
        with transaction.atomic():
            user_save(user=user, actor=Actor.system("cli"), password_changed=True)
        self.stdout.write(f"Password changed for {username!r} (audited).")
