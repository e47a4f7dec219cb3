"""The references that lost their database foreign key (ingest's and receiving's per-item child
tables) are still enforced: per statement by triggers on PostgreSQL, by SQLite's own foreign keys
on the demo (federation/migrations/0032_set_based_references.py). An orphan is refused however it
is written and nothing of its statement is stored; a referenced parent cannot be deleted; and a
delete racing an insert leaves no orphan. Also run on SQLite
(tests/integration/test_references_on_sqlite.py), where the PostgreSQL-only cases skip."""

import importlib
import threading

import pytest
from django.apps import apps
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.utils import timezone

from federation.contributions import services
from federation.contributions.models import Entry, EntryLabel, Label
from federation.db.bulk_insert import copy_rows
from federation.sync.models import EntryChange

migration = importlib.import_module("federation.migrations.0032_set_based_references")

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's triggers and row locks"
)
# The orphan cases commit for real: SQLite checks its deferred foreign keys only at COMMIT.
committing = pytest.mark.django_db(transaction=True)
COLUMNS = ["entry_id", "reason", "recorded_at"]


def _entry(value: str = "ab" * 16) -> Entry:
    return Entry.objects.create(signal_type="md5", value=value)


def _raw(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _copy_changes(*entry_ids: int) -> None:
    """EntryChange rows for ``entry_ids``, by COPY as the ingest writes them."""
    now = timezone.now()
    copy_rows(EntryChange, COLUMNS, [(entry_id, "vetted", now) for entry_id in entry_ids])


def _missing_entry_id() -> int:
    return (Entry.objects.aggregate(top=models.Max("id"))["top"] or 0) + 1000


def test_every_reference_without_a_database_constraint_is_guarded():
    unconstrained = {
        (field.model._meta.model_name, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.ForeignKey) and not field.db_constraint
    }
    assert unconstrained == set(migration.REFERENCES)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own foreign keys")
@pytest.mark.django_db
def test_on_sqlite_every_guarded_reference_keeps_its_foreign_key():
    """No later migration remade one of these tables on SQLite from Django's state, which has
    no foreign key for them (``federation.db.migration_operations.OnPostgreSQL``)."""
    with connection.cursor() as cursor:
        for model_name, field_name in migration.REFERENCES:
            field = apps.get_model("federation", model_name)._meta.get_field(field_name)
            cursor.execute(f"PRAGMA foreign_key_list({field.model._meta.db_table})")
            keys = {(row[3], row[2]) for row in cursor.fetchall()}  # (column, parent table)
            assert (field.column, field.related_model._meta.db_table) in keys, (
                model_name,
                field_name,
            )


@on_postgresql
@pytest.mark.django_db
def test_the_guards_are_installed_and_the_foreign_keys_gone():
    with connection.cursor() as cursor:
        for model_name, field_name in migration.REFERENCES:
            field = apps.get_model("federation", model_name)._meta.get_field(field_name)
            table, parent = field.model._meta.db_table, field.related_model._meta.db_table
            assert migration._foreign_keys(cursor, table, field.column) == []
            cursor.execute(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
                "WHERE tgname LIKE 'refguard%%' AND tgrelid::regclass::text IN (%s, %s)",
                [table, parent],
            )
            found = set(cursor.fetchall())
            assert {(table, "refguard_insert"), (table, "refguard_update")} <= found
            for trigger in ("delete", "update_key", "truncate"):
                assert (parent, f"refguard_{trigger}") in found


@on_postgresql
@pytest.mark.django_db
def test_the_guards_plan_each_lookup_for_its_own_keys():
    """PL/pgSQL keeps a generic plan per connection once a statement has run five times; made
    while a parent table was small, it would stay a sequential scan of it after a bulk load (on
    a database without statistics nothing invalidates it). Every guard plans each lookup anew."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE proname LIKE 'refguard%%' "
            "AND proname NOT IN ('refguard_missing', 'refguard_referenced') "
            "AND proname NOT LIKE '%%truncate'"
        )
        functions = cursor.fetchall()
    fields = [
        apps.get_model("federation", model)._meta.get_field(name)
        for model, name in migration.REFERENCES
    ]
    children = {field.model for field in fields}
    parents = {field.related_model for field in fields}
    assert len(functions) == 2 * len(children) + len(parents)  # insert, update; delete guard
    # The insert checks find the parents by index probes too (0035_reference_guard_lookups).
    insert_config = ["plan_cache_mode=force_custom_plan", "enable_seqscan=off", "jit=off"]
    assert all(
        config
        == (insert_config if name.endswith("_ins") else ["plan_cache_mode=force_custom_plan"])
        for name, config in functions
    ), functions


@on_postgresql
@pytest.mark.django_db
def test_the_insert_checks_find_parents_by_index_on_a_table_without_statistics():
    """A chunk's keys among a larger table of parents, none of it analysed: the check probes the
    primary key for each key rather than reading the whole parent table."""
    entries = Entry.objects.bulk_create(
        Entry(signal_type="md5", value=f"{i:032x}") for i in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'federation_entry'::regclass")
        assert cursor.fetchone()[0] <= 0  # never analysed
        cursor.execute(
            "LOAD 'auto_explain'; SET LOCAL auto_explain.log_min_duration = 0;"
            " SET LOCAL auto_explain.log_nested_statements = on;"
            " SET LOCAL auto_explain.log_level = notice; SET LOCAL client_min_messages = notice"
        )
        notices: list[str] = []
        connection.connection.add_notice_handler(lambda d: notices.append(d.message_primary))
        _copy_changes(*[entry.pk for entry in entries[1000:2000]])
    plans = [n for n in notices if "FROM federation_entry p WHERE p.id = ANY" in n]
    assert plans and all("Seq Scan" not in plan for plan in plans), plans


@on_postgresql
@pytest.mark.django_db
def test_an_orphan_copied_in_is_refused_and_nothing_of_the_copy_is_stored():
    entry = _entry()
    with pytest.raises(IntegrityError, match="federation_entrychange"), transaction.atomic():
        _copy_changes(entry.pk, _missing_entry_id(), entry.pk)
    assert not EntryChange.objects.exists()
    _copy_changes(entry.pk, entry.pk)  # the same without the orphan
    assert EntryChange.objects.count() == 2


@committing
def test_an_orphan_saved_through_the_orm_is_refused_and_not_stored():
    label = Label.objects.create(slug="orphan-test", name="Orphan test", description="-")
    with pytest.raises(IntegrityError), transaction.atomic():
        EntryLabel.objects.create(entry_id=_missing_entry_id(), label=label)
    with pytest.raises(IntegrityError), transaction.atomic():
        EntryChange.objects.bulk_create(
            [EntryChange(entry=_entry()), EntryChange(entry_id=_missing_entry_id())]
        )
    assert not EntryLabel.objects.filter(label=label).exists()
    assert not EntryChange.objects.exists()


@committing
def test_an_update_to_a_missing_parent_is_refused():
    change = EntryChange.objects.create(entry=_entry(), reason="vetted")
    with pytest.raises(IntegrityError), transaction.atomic():
        EntryChange.objects.filter(pk=change.pk).update(entry_id=_missing_entry_id())
    change.refresh_from_db()
    assert change.entry_id == Entry.objects.get().pk


@committing
def test_a_referenced_parent_cannot_be_deleted_and_an_unreferenced_one_can():
    referenced, unreferenced = _entry("ab" * 16), _entry("cd" * 16)
    EntryChange.objects.create(entry=referenced, reason="vetted")
    with pytest.raises(IntegrityError), transaction.atomic():
        _raw("DELETE FROM federation_entry WHERE id = %s", [referenced.pk])
    _raw("DELETE FROM federation_entry WHERE id = %s", [unreferenced.pk])
    assert list(Entry.objects.values_list("pk", flat=True)) == [referenced.pk]
    # Django's on_delete still runs in Python: CASCADE takes the entry's labels first.
    label = Label.objects.create(slug="cascade-test", name="Cascade test", description="-")
    labelled = _entry("ef" * 16)
    EntryLabel.objects.create(entry=labelled, label=label)
    labelled.delete()
    assert not EntryLabel.objects.filter(label=label).exists()


@on_postgresql
@pytest.mark.django_db
def test_a_key_update_or_truncate_of_a_referenced_parent_is_refused():
    entry = _entry()
    label = Label.objects.create(slug="truncate-test", name="Truncate test", description="-")
    EntryLabel.objects.create(entry=entry, label=label)
    with pytest.raises(IntegrityError), transaction.atomic():
        _raw("UPDATE federation_label SET id = id + 1000 WHERE id = %s", [label.pk])
    with pytest.raises(DatabaseError, match="cannot truncate"), transaction.atomic():
        _raw("TRUNCATE federation_label")
    with transaction.atomic():  # with its only child table it may go (rolled back by the test)
        _raw("TRUNCATE federation_label, federation_entrylabel")


@on_postgresql
@committing
def test_a_parent_delete_outside_read_committed_is_refused():
    entry = _entry()
    with pytest.raises(DatabaseError, match="READ COMMITTED"), transaction.atomic():
        _raw("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the transaction's first query
        _raw("DELETE FROM federation_entry WHERE id = %s", [entry.pk])
    assert Entry.objects.filter(pk=entry.pk).exists()


def _in_thread(work, started: threading.Event, release: threading.Event, outcome: dict, key):
    """Run ``work`` in a transaction of its own connection, held open after ``started`` until
    ``release``; ``outcome[key]`` is None or the exception it raised."""

    def run() -> None:
        try:
            with transaction.atomic():
                work()
                started.set()
                release.wait(10)
            outcome[key] = None
        except Exception as exc:
            outcome[key] = exc
            started.set()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _race(first, second) -> dict:
    """``first`` runs and holds its transaction open; ``second`` must then block on it (asserted)
    until ``first`` commits. Returns each one's exception or None."""
    outcome: dict = {}
    started, release, never = threading.Event(), threading.Event(), threading.Event()
    a = _in_thread(first, started, release, outcome, "first")
    assert started.wait(10) and outcome.get("first") is None
    never.set()  # the second commits as soon as its work is done
    b = _in_thread(second, threading.Event(), never, outcome, "second")
    b.join(1.0)
    assert b.is_alive(), "the second transaction did not wait for the first"
    release.set()
    a.join()
    b.join()
    return outcome


@on_postgresql
@committing
def test_a_parent_delete_racing_a_child_insert_waits_and_is_refused():
    entry = _entry()
    outcome = _race(
        lambda: _copy_changes(entry.pk),
        lambda: _raw("DELETE FROM federation_entry WHERE id = %s", [entry.pk]),
    )
    assert outcome["first"] is None
    assert isinstance(outcome["second"], IntegrityError)
    assert EntryChange.objects.filter(entry_id=entry.pk).exists()
    assert Entry.objects.filter(pk=entry.pk).exists()


@on_postgresql
@committing
def test_a_child_insert_racing_a_parent_delete_waits_and_is_refused():
    entry = _entry()
    outcome = _race(
        lambda: _raw("DELETE FROM federation_entry WHERE id = %s", [entry.pk]),
        lambda: _copy_changes(entry.pk),
    )
    assert outcome["first"] is None
    assert isinstance(outcome["second"], IntegrityError)
    assert not Entry.objects.exists() and not EntryChange.objects.exists()


@on_postgresql
@committing
def test_an_ingest_racing_the_delete_of_its_label_leaves_no_orphan(acme_submitter):
    """Through the ingest itself: a label deleted while a bulk submission that uses it is being
    written (the label is still active when the submission reads it)."""
    label = Label.objects.create(slug="short-lived", name="Short-lived", description="-")
    items = [acme_submitter.signed(labels=["short-lived"]) for _ in range(3)]
    outcome = _race(
        lambda: _raw("DELETE FROM federation_label WHERE id = %s", [label.pk]),
        lambda: services.contributions_submit(actor=acme_submitter.actor, items=items),
    )
    assert outcome["first"] is None
    assert isinstance(outcome["second"], IntegrityError)
    assert not EntryLabel.objects.exists() and not Entry.objects.exists()
    assert not Label.objects.filter(slug="short-lived").exists()


@on_postgresql
@committing
def test_a_label_delete_racing_an_ingest_that_uses_it_is_refused(acme_submitter):
    label = Label.objects.create(slug="in-use", name="In use", description="-")
    items = [acme_submitter.signed(labels=["in-use"]) for _ in range(3)]
    outcome = _race(
        lambda: services.contributions_submit(actor=acme_submitter.actor, items=items),
        lambda: _raw("DELETE FROM federation_label WHERE id = %s", [label.pk]),
    )
    assert outcome["first"] is None
    assert isinstance(outcome["second"], IntegrityError)
    assert EntryLabel.objects.filter(label=label).count() == 3
