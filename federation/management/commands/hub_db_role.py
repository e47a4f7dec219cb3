"""The least-privilege database role the hub should run as (docs/transparency.md, "Append-only
in the database").

    manage.py hub_db_role --role concordat_app          # create it (if missing) and grant
    manage.py hub_db_role --role concordat_app --sql    # only print the SQL, for a DBA

Run it as the role that owns the tables (the one that runs ``migrate``), and again after each
``migrate``. Granting writes ``database_role.granted`` (actor ``{"type": "system", "id":
"cli"}``); ``--sql`` changes nothing. The role gets no password here: set one with ``ALTER ROLE
… PASSWORD`` or use certificate or peer authentication, and point DATABASE_URL at it.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from federation.errors import ConcordatError
from federation.transparency.database_role import (
    current_database_and_schema,
    database_role_grant,
    database_role_statements,
)
from members.actors import Actor


class Command(BaseCommand):
    help = "Create (or re-grant) the hub's least-privilege PostgreSQL role, or print its SQL."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, help="The role's name, e.g. concordat_app.")
        parser.add_argument(
            "--sql", action="store_true", help="Print the SQL instead of running it."
        )

    def handle(self, *args, role: str, sql: bool, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles exist on PostgreSQL only.")
        try:
            if sql:
                database, schema = current_database_and_schema()
                for statement in database_role_statements(
                    role=role, database=database, schema=schema
                ):
                    self.stdout.write(statement + ";")
                return
            done = database_role_grant(role=role, actor=Actor.system("cli"))
        except ConcordatError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(done))
