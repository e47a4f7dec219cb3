"""The witnesses of this hub's log: whom the hub asks to cosign its checkpoints
(docs/transparency.md, "Witnesses").

    manage.py hub_witnesses add --name b.hub.example/witness --vkey "b.hub.example/witness+…" \\
        --url https://b.hub.example/api/v1/witness [--inactive]
    manage.py hub_witnesses list

``add`` (a new witness, or a change to one) writes ``witness.added`` or ``witness.changed``
(actor ``{"type": "system", "id": "cli"}``).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from federation.errors import ConcordatError
from federation.transparency.cosigning import witness_save
from federation.transparency.models import Witness
from members.actors import Actor


class Command(BaseCommand):
    help = "Add, change or list the witnesses this hub asks to cosign its checkpoints."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", required=True)
        add = commands.add_parser("add", help="Add a witness (or change one).")
        add.add_argument("--name", required=True, help="The witness's key name.")
        add.add_argument("--vkey", required=True, help="Its cosigner key (type 0x04 vkey).")
        add.add_argument("--url", required=True, help="Its submission prefix.")
        add.add_argument("--inactive", action="store_true", help="Keep it, but stop asking it.")
        commands.add_parser("list", help="One JSON line per witness.")

    def handle(self, *args, subcommand: str, **options):
        if subcommand == "add":
            try:
                witness, created = witness_save(
                    name=options["name"],
                    vkey=options["vkey"],
                    url=options["url"],
                    active=not options["inactive"],
                    actor=Actor.system("cli"),
                )
            except ConcordatError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(json.dumps({"name": witness.name, "created": created}))
            return
        for witness in Witness.objects.order_by("name"):
            self.stdout.write(
                json.dumps(
                    {
                        "name": witness.name,
                        "url": witness.url,
                        "active": witness.active,
                        "tree_size": witness.tree_size,
                        "last_cosigned_at": witness.last_cosigned_at.isoformat()
                        if witness.last_cosigned_at
                        else None,
                        "last_error": witness.last_error,
                    }
                )
            )
