"""The reference guards' insert checks (``0032_set_based_references``) read the statement's new
rows once, and find the parents by their primary key.

- One scan of the statement's new rows gathers the distinct keys of every reference of the
  table (``array_agg(DISTINCT …) FILTER (…)``, one aggregate each), where 0032 read them once
  per reference: a contribution has five.
- The parents are found through their primary key index, never by a sequential scan
  (``enable_seqscan = off`` for the check alone). Without statistics (autovacuum is off on some
  hubs, and a bulk load outruns it anyway) the planner, seeing a chunk's 1,000 keys against a
  table of some tens of thousands of entries, read every entry for each child statement: a
  trusted member's ingest, whose five child tables (contributions, labels, decisions, change
  rows, TAXII versions) each point at the chunk's entries, read the entry table five times per
  chunk, a cost that grew with the table. An index probe per key costs the same whatever the
  table's size. ``jit = off`` keeps a plan that the setting made look costly from being
  compiled.

What each check guarantees is unchanged: the same keys locked ``FOR KEY SHARE``, the same error.
On PostgreSQL only, like 0032: SQLite keeps its foreign keys.
"""

import importlib

from django.db import migrations

guards = importlib.import_module("federation.migrations.0032_set_based_references")

PREFIX = guards.PREFIX

# The insert check's settings: 0032's custom plans, and index probes for the parents.
SETTINGS = f"{guards.CUSTOM_PLANS} SET enable_seqscan = off SET jit = off"


def _insert_check_sql(table: str, refs: list) -> str:
    """The statement-level insert check of one child table, reading its new rows once."""
    gathered = ",\n           ".join(
        f"array_agg(DISTINCT n.{column}) FILTER (WHERE n.{column} IS NOT NULL)"
        for _, column, *_ in refs
    )
    into = ", ".join(f"keys_{column}" for _, column, *_ in refs)
    checks = []
    for _, column, parent, key, _ in refs:
        checks.append(f"""
    IF keys_{column} IS NOT NULL THEN
        SELECT count(*) INTO locked
          FROM (SELECT FROM {parent} p WHERE p.{key} = ANY (keys_{column}) FOR KEY SHARE) l;
        IF locked <> cardinality(keys_{column}) THEN
            SELECT k::text INTO missing FROM unnest(keys_{column}) k
             WHERE NOT EXISTS (SELECT FROM {parent} p WHERE p.{key} = k) LIMIT 1;
            PERFORM refguard_missing('{table}', '{column}', '{parent}', missing);
        END IF;
    END IF;""")  # noqa: S608 (the names are the models', no input reaches them)
    declared = " ".join(f"keys_{column} {key_type}[];" for _, column, *_, key_type in refs)
    return f"""CREATE OR REPLACE FUNCTION {PREFIX}_{table}_ins() RETURNS trigger LANGUAGE plpgsql
{SETTINGS} AS $$
DECLARE {declared} locked bigint; missing text;
BEGIN
    SELECT {gathered}
      INTO {into} FROM {PREFIX}_new n;{"".join(checks)}
    RETURN NULL;
END $$"""


def _previous_sql(table: str, refs: list) -> str:
    """0032's insert check of one child table."""
    created = guards._child_sql(table, refs)[0]
    return created.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _replace(make):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        refs = guards._references(apps, schema_editor.connection)
        for table, table_refs in guards._by(refs, 0).items():
            schema_editor.execute(make(table, table_refs), params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0034_receipt_index"),
    ]

    operations = [
        migrations.RunPython(_replace(_insert_check_sql), _replace(_previous_sql)),
    ]
