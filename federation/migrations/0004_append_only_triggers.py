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

FUNCTIONS = """
CREATE OR REPLACE FUNCTION concordat_auditevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.leaf_index IS NULL AND NEW.leaf_index IS NOT NULL
       AND (to_jsonb(NEW) - 'leaf_index') = (to_jsonb(OLD) - 'leaf_index') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'concordat: audit events are append-only (% of event % refused; only '
        'setting leaf_index once from NULL is allowed)', TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE FUNCTION concordat_log_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'concordat: % rows are immutable (% refused)', TG_TABLE_NAME, TG_OP
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
    RAISE EXCEPTION 'concordat: contributions are immutable (% of contribution % refused; only '
        'status and withdrawn_by may change)', TG_OP, OLD.uuid
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""

TRIGGERS = {
    "federation_auditevent": "concordat_auditevent_append_only",
    "federation_merklenode": "concordat_log_immutable",
    "federation_checkpoint": "concordat_log_immutable",
    "federation_contribution": "concordat_contribution_append_only",
}

TRIGGER_NAME = "concordat_append_only"


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, params=None)  # None: "%" is PL/pgSQL here
    for table, function in TRIGGERS.items():
        schema_editor.execute(
            f"CREATE TRIGGER {TRIGGER_NAME} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            params=None,
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER_NAME} ON {table}", params=None)
    for function in sorted(set(TRIGGERS.values())):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0003_lead_ingest_indexes"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
