"""The hub's OPRF key for the private lookup (docs/private-lookup.md): ``create`` the first one,
``rotate`` it, or ``show`` the current one. Both changes are audited (``lookup.key_created``,
``lookup.key_retired``) by the same services any other caller would use; the key file is
written at CONCORDAT_LOOKUP_KEY_PATH once the change has committed."""

from django.core.management.base import BaseCommand, CommandError

from federation.errors import ConcordatError
from federation.lookup.keys import current_key
from federation.lookup.services import lookup_key_create, lookup_key_rotate
from members.actors import Actor


class Command(BaseCommand):
    help = "Create, rotate or show the hub's private-lookup (OPRF) key."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "rotate", "show"])

    def handle(self, *args, action: str, **options):
        actor = Actor.system("cli")
        try:
            if action == "create":
                key = lookup_key_create(actor=actor)
            elif action == "rotate":
                key = lookup_key_rotate(actor=actor)
            else:
                key = current_key()
        except ConcordatError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"lookup key {key.key_id} public key (hex): {key.public_key.hex()}")
