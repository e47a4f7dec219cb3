"""References checked per statement, not per row, on the tables that ingest and federation
receiving write per item (docs/architecture.md, "References checked per statement").

A foreign key makes PostgreSQL queue one trigger event per inserted row and per key, each run at
COMMIT as its own ``SELECT 1 … FOR KEY SHARE`` on the parent: about 15% of the database's CPU per
ingested item. On the child tables below the fields keep their Django ``ForeignKey`` (joins, and
``on_delete``, which Django carries out in Python) but lose the database constraint
(``db_constraint=False``), and PostgreSQL triggers keep the same guarantee set-based:

- child, ``AFTER INSERT … REFERENCING NEW TABLE … FOR EACH STATEMENT`` (``COPY`` fires it too):
  for each reference, the distinct keys the statement wrote (one array) are locked ``FOR KEY
  SHARE`` in their parent (``id = ANY (keys)``), as the foreign key would lock them; fewer rows
  locked than keys (one has no parent row) raises ``foreign_key_violation`` (23503), so Django
  raises ``IntegrityError`` as before, and the statement stores nothing.
  The check runs at the end of the statement, not at COMMIT: nothing in the code writes a child
  before its parent.
- child, ``AFTER UPDATE OF <reference columns> … FOR EACH ROW WHEN (a reference changed)``: the
  same check for the one row (a retraction setting ``withdrawn_by``); other updates do not fire it.
- parent, ``BEFORE DELETE`` and ``BEFORE UPDATE OF id`` ``FOR EACH ROW``: refused (23503) while a
  child row references it (each probe uses the child's index, as the foreign key's did). The row
  is locked before the trigger runs, and under READ COMMITTED the probe's snapshot is taken after
  that lock, so a child inserted concurrently is either seen (it committed while the delete
  waited on its ``FOR KEY SHARE``) or fails its own check (its lock waited for the delete).
  Under REPEATABLE READ or SERIALIZABLE the probe's snapshot could miss a child committed while
  the delete waited, so there an unreferenced parent's delete is refused too (``0A000``):
  the hub deletes only under READ COMMITTED (its only other transactions are read-only).
- parent, ``AFTER TRUNCATE … FOR EACH STATEMENT``: refused (``0A000``, as PostgreSQL refuses a
  referenced table's TRUNCATE) when a child table still has rows; a TRUNCATE naming the children
  too passes, since every table of it is empty by then.

``session_replication_role = replica`` switches these off, as it switched the foreign keys' own
triggers off. SQLite (the demo) keeps its real foreign keys: the migration changes only Django's
state there, and the tables its earlier migrations made keep their ``REFERENCES``
(tests/integration/test_references_on_sqlite.py: an orphan still fails there at COMMIT).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (model, field): each reference guarded by the triggers. tests/federation/db/
# test_set_based_references.py checks that this is every ForeignKey with db_constraint=False.
REFERENCES = [
    ("contribution", "organisation"),
    ("contribution", "signing_key"),
    ("contribution", "entry"),
    ("contribution", "incident"),
    ("contribution", "withdrawn_by"),
    ("entrylabel", "entry"),
    ("entrylabel", "label"),
    ("entrychange", "entry"),
    ("decision", "entry"),
    ("decision", "user"),
    ("decision", "organisation"),
    ("stixobjectversion", "entry"),
    ("stixobjectversion", "organisation"),
    ("outboxitem", "peer"),
    ("outboxitem", "contribution"),
    ("outboxitem", "entry"),
    ("outboxitem", "signing_key"),
    ("receipt", "contribution"),
    ("pulleditem", "peer"),
    ("pulleditem", "entry"),
    ("pulleditem", "contribution"),
    ("pulleditem", "signing_key"),
    ("pulleditem", "event"),
]

# Not "concordat…": those are the append-only triggers (tests/federation/transparency/).
PREFIX = "refguard"

# Each lookup is planned for its own keys and the table as it is now: PL/pgSQL would otherwise keep
# a generic plan for the connection's life, made perhaps while a parent (entries) was small and
# then kept as a sequential scan of it after a bulk load, on a database that has no statistics.
CUSTOM_PLANS = "SET plan_cache_mode = force_custom_plan"

HELPERS = """
CREATE OR REPLACE FUNCTION refguard_missing(child text, col text, parent text, key text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key "%.%"', child, child, col
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = format('Key (%s)=(%s) is not present in table "%s".', col, key, parent);
END $$;

CREATE OR REPLACE FUNCTION refguard_referenced(parent text, key text, child text, col text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'update or delete on table "%" violates foreign key "%.%"', parent, child, col
        USING ERRCODE = 'foreign_key_violation',
              DETAIL = format('Key (id)=(%s) is still referenced from table "%s".', key, child);
END $$;
"""


def _references(apps, connection) -> list[tuple[str, str, str, str, str]]:
    """(child table, column, parent table, parent column, key type) of each guarded reference."""
    found = []
    for model_name, field_name in REFERENCES:
        field = apps.get_model("federation", model_name)._meta.get_field(field_name)
        target = field.target_field
        assert target.column == "id", field  # every guarded key points at an id
        key_type = target.rel_db_type(connection)  # bigint, integer, uuid (an incident's)
        found.append(
            (field.model._meta.db_table, field.column, target.model._meta.db_table, "id", key_type)
        )
    return found


def _by(rows, index: int) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row[index], []).append(row)
    return grouped


def _child_sql(table: str, refs: list) -> list[str]:
    """The statement-level insert check and the row-level update check of one child table."""
    inserted = []
    for _, column, parent, key, _ in refs:
        # The distinct keys, then one index probe each, locking the parent row as the foreign
        # key would: the count of rows locked is the count of keys unless one is missing.
        inserted.append(f"""
    SELECT array_agg(DISTINCT n.{column}) INTO keys_{column} FROM {PREFIX}_new n
     WHERE n.{column} IS NOT NULL;
    IF keys_{column} IS NOT NULL THEN
        SELECT count(*) INTO locked
          FROM (SELECT FROM {parent} p WHERE p.{key} = ANY (keys_{column}) FOR KEY SHARE) l;
        IF locked <> cardinality(keys_{column}) THEN
            SELECT k::text INTO missing FROM unnest(keys_{column}) k
             WHERE NOT EXISTS (SELECT FROM {parent} p WHERE p.{key} = k) LIMIT 1;
            PERFORM refguard_missing('{table}', '{column}', '{parent}', missing);
        END IF;
    END IF;""")  # noqa: S608 (the names are the models', no input reaches them)
    updated = []
    for _, column, parent, key, _ in refs:
        updated.append(f"""
    IF NEW.{column} IS NOT NULL AND NEW.{column} IS DISTINCT FROM OLD.{column} THEN
        PERFORM FROM {parent} p WHERE p.{key} = NEW.{column} FOR KEY SHARE;
        IF NOT FOUND THEN
            PERFORM refguard_missing('{table}', '{column}', '{parent}', NEW.{column}::text);
        END IF;
    END IF;""")
    columns = ", ".join(column for _, column, *_ in refs)
    declared = " ".join(f"keys_{column} {key_type}[];" for _, column, *_, key_type in refs)
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for _, c, *_ in refs)
    return [
        f"""CREATE FUNCTION {PREFIX}_{table}_ins() RETURNS trigger LANGUAGE plpgsql
{CUSTOM_PLANS} AS $$
DECLARE {declared} locked bigint; missing text;
BEGIN{"".join(inserted)}
    RETURN NULL;
END $$""",
        f"""CREATE FUNCTION {PREFIX}_{table}_upd() RETURNS trigger LANGUAGE plpgsql
{CUSTOM_PLANS} AS $$
BEGIN{"".join(updated)}
    RETURN NULL;
END $$""",
        f"CREATE TRIGGER {PREFIX}_insert AFTER INSERT ON {table} "
        f"REFERENCING NEW TABLE AS {PREFIX}_new FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {PREFIX}_{table}_ins()",
        f"CREATE TRIGGER {PREFIX}_update AFTER UPDATE OF {columns} ON {table} "
        f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION {PREFIX}_{table}_upd()",
    ]


def _parent_sql(table: str, refs: list) -> list[str]:
    """The row-level delete and key-update guard and the TRUNCATE guard of one parent table."""
    probes, emptiness = [], []
    for child, column, _, key, _ in refs:
        probes.append(f"""
    IF EXISTS (SELECT FROM {child} c WHERE c.{column} = OLD.{key}) THEN
        PERFORM refguard_referenced('{table}', OLD.{key}::text, '{child}', '{column}');
    END IF;""")
    for child in dict.fromkeys(child for child, *_ in refs):
        emptiness.append(f"""
    IF EXISTS (SELECT FROM {child}) THEN
        RAISE EXCEPTION 'cannot truncate a table referenced by another: {table} (by {child})'
            USING ERRCODE = 'feature_not_supported';
    END IF;""")
    return [
        f"""CREATE FUNCTION {PREFIX}_{table}_guard() RETURNS trigger LANGUAGE plpgsql
{CUSTOM_PLANS} AS $$
BEGIN{"".join(probes)}
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '% of a row of % refused under %: its reference guards need READ '
            'COMMITTED to see concurrent inserts', TG_OP, TG_TABLE_NAME,
            current_setting('transaction_isolation')
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$""",
        f"""CREATE FUNCTION {PREFIX}_{table}_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{"".join(emptiness)}
    RETURN NULL;
END $$""",
        f"CREATE TRIGGER {PREFIX}_delete BEFORE DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {PREFIX}_{table}_guard()",
        f"CREATE TRIGGER {PREFIX}_update_key BEFORE UPDATE OF id ON {table} "
        f"FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) "
        f"EXECUTE FUNCTION {PREFIX}_{table}_guard()",
        f"CREATE TRIGGER {PREFIX}_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {PREFIX}_{table}_truncate()",
    ]


def _foreign_keys(cursor, table: str, column: str) -> list[str]:
    cursor.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
        "WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND a.attname = %s",
        [table, column],
    )
    return [name for (name,) in cursor.fetchall()]


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    refs = _references(apps, schema_editor.connection)
    schema_editor.execute(HELPERS, params=None)  # the "%" signs are PL/pgSQL's
    for table, table_refs in _by(refs, 0).items():
        for statement in _child_sql(table, table_refs):
            schema_editor.execute(statement, params=None)
    for table, table_refs in _by(refs, 2).items():
        for statement in _parent_sql(table, table_refs):
            schema_editor.execute(statement, params=None)
    with schema_editor.connection.cursor() as cursor:
        for table, column, *_ in refs:
            for name in _foreign_keys(cursor, table, column):
                schema_editor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"', params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    refs = _references(apps, schema_editor.connection)
    for table, column, parent, key, _ in refs:
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_fk FOREIGN KEY ({column}) "
            f"REFERENCES {parent} ({key}) DEFERRABLE INITIALLY DEFERRED",
            params=None,
        )
    for table in _by(refs, 0):
        schema_editor.execute(f"DROP TRIGGER {PREFIX}_insert ON {table}", params=None)
        schema_editor.execute(f"DROP TRIGGER {PREFIX}_update ON {table}", params=None)
        schema_editor.execute(f"DROP FUNCTION {PREFIX}_{table}_ins()", params=None)
        schema_editor.execute(f"DROP FUNCTION {PREFIX}_{table}_upd()", params=None)
    for table in _by(refs, 2):
        for trigger in ("delete", "update_key", "truncate"):
            schema_editor.execute(f"DROP TRIGGER {PREFIX}_{trigger} ON {table}", params=None)
        schema_editor.execute(f"DROP FUNCTION {PREFIX}_{table}_guard()", params=None)
        schema_editor.execute(f"DROP FUNCTION {PREFIX}_{table}_truncate()", params=None)
    for helper in ("missing", "referenced"):
        schema_editor.execute(
            f"DROP FUNCTION {PREFIX}_{helper}(text, text, text, text)", params=None
        )


class Migration(migrations.Migration):
    dependencies = [
        ("federation", "0031_pulleditem_pulled_at"),
        ("members", "0005_h7_lookup_credentials"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="contribution",
                    name="entry",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="contributions",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="contribution",
                    name="incident",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="contributions",
                        to="federation.incident",
                    ),
                ),
                migrations.AlterField(
                    model_name="contribution",
                    name="organisation",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="contributions",
                        to="members.organisation",
                    ),
                ),
                migrations.AlterField(
                    model_name="contribution",
                    name="signing_key",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.signingkey",
                    ),
                ),
                migrations.AlterField(
                    model_name="contribution",
                    name="withdrawn_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="withdrew",
                        to="federation.contribution",
                    ),
                ),
                migrations.AlterField(
                    model_name="decision",
                    name="entry",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="decisions",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="decision",
                    name="organisation",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.organisation",
                    ),
                ),
                migrations.AlterField(
                    model_name="decision",
                    name="user",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="entrychange",
                    name="entry",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="entrylabel",
                    name="entry",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="entrylabel",
                    name="label",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        to="federation.label",
                    ),
                ),
                migrations.AlterField(
                    model_name="outboxitem",
                    name="contribution",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.contribution",
                    ),
                ),
                migrations.AlterField(
                    model_name="outboxitem",
                    name="entry",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="outboxitem",
                    name="peer",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outbox",
                        to="members.peer",
                    ),
                ),
                migrations.AlterField(
                    model_name="outboxitem",
                    name="signing_key",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.signingkey",
                    ),
                ),
                migrations.AlterField(
                    model_name="pulleditem",
                    name="contribution",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.contribution",
                    ),
                ),
                migrations.AlterField(
                    model_name="pulleditem",
                    name="entry",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="pulleditem",
                    name="event",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.auditevent",
                    ),
                ),
                migrations.AlterField(
                    model_name="pulleditem",
                    name="peer",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="members.peer",
                    ),
                ),
                migrations.AlterField(
                    model_name="pulleditem",
                    name="signing_key",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.signingkey",
                    ),
                ),
                migrations.AlterField(
                    model_name="receipt",
                    name="contribution",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="receipts",
                        to="federation.contribution",
                    ),
                ),
                migrations.AlterField(
                    model_name="stixobjectversion",
                    name="entry",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="federation.entry",
                    ),
                ),
                migrations.AlterField(
                    model_name="stixobjectversion",
                    name="organisation",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.organisation",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(install, uninstall, elidable=False)],
        ),
    ]
