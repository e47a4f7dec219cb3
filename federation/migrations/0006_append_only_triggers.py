"""Append-only in the database: PostgreSQL triggers refuse edits of the audit log and of
contributions that the code never makes (docs/transparency.md, "Append-only in the database").

- federation_auditevent: no DELETE; an UPDATE only when it sets leaf_index from NULL and changes
  nothing else (the sequencer's one assignment).
- federation_merklenode, federation_checkpoint: no UPDATE, no DELETE.
- federation_contribution: no DELETE; an UPDATE may change status and withdrawn_by only.

The triggers are plain PL/pgSQL rather than django-pgtrigger's: pgtrigger's triggers skip
themselves when the session variable ``pgtrigger.ignore`` names them, and any database role may
set such a variable, so they would stop no one. These can be passed only by a role that may
disable triggers (the table owner, with ALTER TABLE) or set ``session_replication_role``
(a superuser). SQLite (the demo) gets no triggers: the migration does nothing there.
"""

from django.db import migrations

# Every column of an audit event but leaf_index: compared in the trigger's WHEN clause, which
# PostgreSQL evaluates without calling a function, so the sequencer's updates stay cheap.
# tests/federation/transparency/test_append_only.py checks this list against the model's columns.
AUDIT_EVENT_COLUMNS = [
    "id", "occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
    "object_type", "object_id", "data",
]  # fmt: skip

FUNCTIONS = """
CREATE OR REPLACE FUNCTION concordat_log_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'concordat: % is append-only (% refused; the only change allowed: %)',
        TG_TABLE_NAME, TG_OP, TG_ARGV[0]
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE FUNCTION concordat_contribution_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - 'status' - 'withdrawn_by_id')
           = (to_jsonb(OLD) - 'status' - 'withdrawn_by_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'concordat: federation_contribution is append-only (% of contribution % '
        'refused; the only change allowed: status and withdrawn_by)', TG_OP, OLD.uuid
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""

_UNCHANGED = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in AUDIT_EVENT_COLUMNS)

TRIGGERS = [
    (
        "concordat_append_only",
        "federation_auditevent",
        "BEFORE UPDATE",
        f"WHEN (NOT (OLD.leaf_index IS NULL AND NEW.leaf_index IS NOT NULL AND {_UNCHANGED}))",
        "concordat_log_immutable('setting leaf_index once from NULL')",
    ),
    (
        "concordat_append_only_delete",
        "federation_auditevent",
        "BEFORE DELETE",
        "",
        "concordat_log_immutable('setting leaf_index once from NULL')",
    ),
    (
        "concordat_append_only",
        "federation_merklenode",
        "BEFORE UPDATE OR DELETE",
        "",
        "concordat_log_immutable('none')",
    ),
    (
        "concordat_append_only",
        "federation_checkpoint",
        "BEFORE UPDATE OR DELETE",
        "",
        "concordat_log_immutable('none')",
    ),
    (
        "concordat_append_only",
        "federation_contribution",
        "BEFORE UPDATE OR DELETE",
        "",
        "concordat_contribution_append_only()",
    ),
]

FUNCTION_NAMES = ["concordat_log_immutable", "concordat_contribution_append_only"]


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # params=None: the "%" signs are PL/pgSQL's, not placeholders.
    schema_editor.execute(FUNCTIONS, params=None)
    for name, table, events, condition, function in TRIGGERS:
        schema_editor.execute(
            f"CREATE TRIGGER {name} {events} ON {table} FOR EACH ROW {condition} "
            f"EXECUTE FUNCTION {function}",
            params=None,
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, *_ in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)
    for function in FUNCTION_NAMES:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0005_incident_name_validator"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
