"""``TRUNCATE`` refused on the append-only tables (docs/transparency.md, "Append-only in the
database").

The row triggers of 0006 never see a ``TRUNCATE``: it removes every row without visiting one.
A statement-level ``BEFORE TRUNCATE`` trigger on each append-only table refuses it, like the row
triggers refuse ``DELETE``. As with those, a superuser can pass it (``SET
session_replication_role = replica``, which the test suite uses to reset tables between
transactional tests), and so can the table owner (``ALTER TABLE … DISABLE TRIGGER``). SQLite
(the demo) has no ``TRUNCATE``: the migration does nothing there.
"""

from django.db import migrations

TABLES = [
    "federation_auditevent",
    "federation_merklenode",
    "federation_checkpoint",
    "federation_contribution",
]
TRIGGER = "concordat_append_only_truncate"

FUNCTION = """
CREATE OR REPLACE FUNCTION concordat_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'concordat: % is append-only (TRUNCATE refused)', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)  # the "%" is PL/pgSQL's, not a placeholder
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {TRIGGER} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
            "EXECUTE FUNCTION concordat_no_truncate()",
            params=None,
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}", params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS concordat_no_truncate()", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0012_receipt_sent_to"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
