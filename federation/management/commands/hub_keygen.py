"""Create the hub's Ed25519 signing key at CONCORDAT_HUB_KEY_PATH (refuses to overwrite one),
and its witness key at CONCORDAT_WITNESS_KEY_PATH when there is none."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from federation.hubkey import generate_key_file, hub_public_key_b64
from federation.transparency.cosignatures import witness_verifier_key


class Command(BaseCommand):
    help = "Create the hub's signing key if there is none; print its public key."

    def add_arguments(self, parser):
        parser.add_argument("--if-missing", action="store_true", help="Do nothing if a key exists.")

    def handle(self, *args, if_missing: bool, **options):
        path = Path(settings.HUB_KEY_PATH)
        if path.exists():
            if not if_missing:
                raise CommandError(f"{path} exists; the hub key is never overwritten.")
        else:
            generate_key_file(path)
            self.stdout.write(f"Created hub key {path}")
        self.stdout.write(f"hub {settings.HUB_ID} public key (base64): {hub_public_key_b64()}")
        witness_path = Path(settings.WITNESS_KEY_PATH)
        if not witness_path.exists():
            generate_key_file(witness_path)
            self.stdout.write(f"Created witness key {witness_path}")
        self.stdout.write(f"witness key (vkey): {witness_verifier_key()}")
