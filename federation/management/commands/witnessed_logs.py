"""The logs this hub witnesses (docs/transparency.md, "Witnesses").

    manage.py witnessed_logs add --origin a.hub.example --vkey "a.hub.example+1234abcd+AQ..."
    manage.py witnessed_logs list
    manage.py witnessed_logs key        # this hub's witness key, for the log to configure
    manage.py witnessed_logs resume --origin a.hub.example --reason "..."   # out of split view

``add`` (a new log, or a new verifier key for one) writes ``witnessed_log.added`` or
``witnessed_log.changed``; ``resume`` writes ``witnessed_log.resumed`` (actor ``{"type":
"system", "id": "cli"}``).
"""

import base64
import json

from django.core.management.base import BaseCommand, CommandError

from federation.errors import ConcordatError
from federation.transparency.cosignatures import witness_verifier_key
from federation.transparency.models import WitnessedLog
from federation.witnessing.witness import witnessed_log_resume, witnessed_log_save
from members.actors import Actor


class Command(BaseCommand):
    help = "Add or list the logs this hub witnesses; print this hub's witness key."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", required=True)
        add = commands.add_parser("add", help="Witness a log (or change its verifier key).")
        add.add_argument("--origin", required=True, help="The log's checkpoint origin line.")
        add.add_argument("--vkey", required=True, help="The log's signed-note verifier key.")
        commands.add_parser("list", help="One JSON line per witnessed log.")
        commands.add_parser("key", help="Print this hub's witness key (vkey).")
        resume = commands.add_parser(
            "resume", help="Witness a log held in split view again (the evidence stays)."
        )
        resume.add_argument("--origin", required=True, help="The log's checkpoint origin line.")
        resume.add_argument("--reason", required=True, help="Why, for the audit log.")

    def handle(self, *args, subcommand: str, **options):
        if subcommand == "key":
            self.stdout.write(witness_verifier_key())
        elif subcommand == "add":
            try:
                log, created = witnessed_log_save(
                    origin=options["origin"], vkey=options["vkey"], actor=Actor.system("cli")
                )
            except ConcordatError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(json.dumps({"origin": log.origin, "created": created}))
        elif subcommand == "resume":
            try:
                log = witnessed_log_resume(
                    origin=options["origin"], reason=options["reason"], actor=Actor.system("cli")
                )
            except ConcordatError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(json.dumps({"origin": log.origin, "state": log.state}))
        else:
            for log in WitnessedLog.objects.order_by("origin"):
                root = base64.b64encode(bytes(log.root_hash)).decode() if log.root_hash else None
                self.stdout.write(
                    json.dumps(
                        {
                            "origin": log.origin,
                            "vkey": log.vkey,
                            "state": log.state,
                            "tree_size": log.tree_size,
                            "root_hash": root,
                            "cosigned_at": log.cosigned_at.isoformat() if log.cosigned_at else None,
                        }
                    )
                )
