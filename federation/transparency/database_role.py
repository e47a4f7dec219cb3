"""The hub's least-privilege database role (docs/transparency.md, "Append-only in the database").

The append-only triggers stop the hub's own role, but not the role that owns the tables (which
may disable them) nor a superuser. So the hub should run as a role that owns nothing: ``SELECT,
INSERT, UPDATE, DELETE`` on its tables, but no ``DELETE`` on the append-only ones and no
``TRUNCATE``, ``REFERENCES`` or ``TRIGGER`` anywhere. ``database_role_statements`` writes that
SQL (``manage.py hub_db_role --sql`` prints it for a DBA); ``database_role_grant`` runs it as
the migrating role, in one transaction with its audit event.
"""

import re

from django.db import connection, transaction

from federation.errors import InvalidInput
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor

# The tables the triggers guard (migrations 0006 and 0015): no DELETE, no TRUNCATE.
APPEND_ONLY_TABLES = (
    "federation_auditevent",
    "federation_checkpoint",
    "federation_contribution",
    "federation_merklenode",
)
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _checked_role(role: str) -> str:
    if not _ROLE_NAME.fullmatch(role):
        raise InvalidInput(
            "The role name must be 1-63 lowercase letters, digits or underscores, not starting "
            "with a digit.",
            code="invalid",
            details={"role": role[:80]},
        )
    return role


def database_role_statements(*, role: str, database: str, schema: str) -> list[str]:
    """The SQL that makes ``role`` (if missing) and sets exactly its privileges; idempotent, so
    it may be run again after each ``migrate`` (new tables get theirs by default privileges)."""
    r, s = _quote(_checked_role(role)), _quote(schema)
    append_only = ", ".join(f"{s}.{_quote(table)}" for table in APPEND_ONLY_TABLES)
    return [
        # The name is checked against _ROLE_NAME and quoted: nothing else reaches the text.
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "  # noqa: S608
        f"{_literal(role)}) THEN CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
        "NOREPLICATION NOBYPASSRLS; END IF; END $$",
        f"GRANT CONNECT ON DATABASE {_quote(database)} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"REVOKE DELETE ON {append_only} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
        f"TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
    ]


def current_database_and_schema() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
    return database, schema


def _refusal(cursor, role: str, schema: str) -> str | None:
    """Why ``role`` cannot be the hub's least-privilege role, or None."""
    cursor.execute(
        "SELECT r.rolsuper, r.rolname = current_user, EXISTS ("
        "  SELECT 1 FROM pg_tables t WHERE t.schemaname = %s"
        "  AND pg_has_role(r.oid, t.tableowner, 'MEMBER'))"
        " FROM pg_roles r WHERE r.rolname = %s",
        [schema, role],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    superuser, is_current, owner = row
    if superuser:
        return f"{role} is a superuser: it passes every trigger."
    if is_current:
        return f"{role} is the role running this command, which owns the tables."
    if owner:
        return f"{role} owns (or is a member of the owner of) the hub's tables."
    return None


def database_role_grant(*, role: str, actor: Actor) -> dict:
    """Create ``role`` if missing and give it exactly the hub's privileges, as the role that owns
    the tables; writes ``database_role.granted``. Refuses a superuser or an owner of the tables."""
    if connection.vendor != "postgresql":
        raise InvalidInput("Database roles exist on PostgreSQL only.", code="invalid")
    _checked_role(role)
    database, schema = current_database_and_schema()
    statements = database_role_statements(role=role, database=database, schema=schema)
    with transaction.atomic(), connection.cursor() as cursor:
        problem = _refusal(cursor, role, schema)
        if problem is not None:
            raise InvalidInput(problem, code="invalid", details={"role": role})
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        created = cursor.fetchone() is None
        for statement in statements:
            cursor.execute(statement, None)
        audit_record(
            AuditRecord(
                action=Action.DATABASE_ROLE_GRANTED,
                actor=actor,
                object_type=ObjectType.DATABASE_ROLE,
                object_id=role,
                data={
                    Key.ROLE: role,
                    Key.CREATED: created,
                    Key.DATABASE: database,
                    Key.SCHEMA: schema,
                    Key.APPEND_ONLY: list(APPEND_ONLY_TABLES),
                    Key.STATEMENTS: statements,
                },
            )
        )
    return {"role": role, "created": created, "database": database, "schema": schema}
