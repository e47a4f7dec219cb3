"""The database refuses edits of the log and of contributions (PostgreSQL triggers), except the
sequencer's one-time leaf_index and a retraction's status/withdrawn_by, and TRUNCATE of any of
them; a superuser can still switch triggers off, which the verifier must then catch; and migrations still apply on SQLite."""

import importlib
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from concordat_client import verifier
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from federation.contributions.models import Contribution
from federation.transparency.audit import AuditRecord, audit_record_many, event_leaf_bytes
from federation.transparency.models import AuditEvent, Checkpoint, MerkleNode
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def record(count: int) -> list[AuditEvent]:
    audit_record_many(
        AuditRecord(action="test.event", actor=ACTOR, object_id=str(i), data={"n": i})
        for i in range(count)
    )
    return list(AuditEvent.objects.order_by("id"))


def raw(sql: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError, match="concordat: "), transaction.atomic():
        raw(sql, params)


def test_a_raw_update_of_a_logged_event_is_refused():
    (event,) = record(1)
    sequence_pending()
    refused(
        "UPDATE federation_auditevent SET data = '{\"n\": 999}'::jsonb WHERE id = %s", [event.pk]
    )
    refused("UPDATE federation_auditevent SET organisation = 'mallory' WHERE id = %s", [event.pk])
    refused("UPDATE federation_auditevent SET leaf_index = 41 WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.data == {"n": 0} and event.leaf_index == 0


def test_an_unsequenced_event_cannot_be_edited_or_deleted_either():
    (event,) = record(1)
    refused("UPDATE federation_auditevent SET data = '{}'::jsonb WHERE id = %s", [event.pk])
    # leaf_index may only be set alone: not together with any other change
    refused(
        "UPDATE federation_auditevent SET leaf_index = 0, action = 'x' WHERE id = %s", [event.pk]
    )
    refused("DELETE FROM federation_auditevent WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk, leaf_index__isnull=True).exists()


def test_setting_leaf_index_once_from_null_is_allowed_and_only_once():
    (event,) = record(1)
    assert raw("UPDATE federation_auditevent SET leaf_index = 0 WHERE id = %s", [event.pk]) == 1
    refused("UPDATE federation_auditevent SET leaf_index = NULL WHERE id = %s", [event.pk])
    refused("UPDATE federation_auditevent SET leaf_index = 1 WHERE id = %s", [event.pk])


def test_the_sequencer_still_assigns_leaf_indexes_under_the_trigger():
    record(5)
    assert sequence_pending() == 5
    assert sorted(AuditEvent.objects.values_list("leaf_index", flat=True)) == [0, 1, 2, 3, 4]
    assert Checkpoint.objects.get(tree_size=5)


def test_stored_merkle_nodes_and_checkpoints_are_immutable():
    record(4)
    sequence_pending()
    refused("UPDATE federation_merklenode SET hash = %s WHERE level = 0", [b"\x00" * 32])
    refused("DELETE FROM federation_merklenode WHERE level = 2")
    refused("UPDATE federation_checkpoint SET note = 'forged' WHERE tree_size = 4")
    refused("DELETE FROM federation_checkpoint")
    assert MerkleNode.objects.count() == 4 + 2 + 1
    assert Checkpoint.objects.filter(tree_size=4).exists()


def test_a_contribution_may_change_status_and_withdrawn_by_only(acme_submitter):
    document = acme_submitter.contribution()
    assert acme_submitter.submit(document).status_code == 201
    retract = acme_submitter.submit(action="retract", labels=[], signal=document["signal"])
    assert retract.status_code == 201, retract.json()
    stored = Contribution.objects.get(uuid=document["uuid"])
    assert stored.status == Contribution.Status.WITHDRAWN  # the retraction's update passed
    assert raw(
        "UPDATE federation_contribution SET status = 'active', withdrawn_by_id = NULL "
        "WHERE id = %s",
        [stored.pk],
    )
    for change in (
        "canonical = replace(canonical, 'attack-footage', 'manifesto')",
        "scope = 'hub'",
        "received_at = received_at - interval '1 day'",
        "origin_hub = 'elsewhere'",
    ):
        refused(f"UPDATE federation_contribution SET {change} WHERE id = %s", [stored.pk])  # noqa: S608
    refused("DELETE FROM federation_contribution WHERE id = %s", [stored.pk])
    stored.refresh_from_db()
    assert "attack-footage" in stored.canonical and stored.scope == "federation"


def test_a_superuser_can_switch_the_triggers_off_and_the_log_then_shows_the_edit():
    record(3)
    sequence_pending()
    checkpoint = Checkpoint.objects.get(tree_size=3)
    with as_superuser_bypassing_triggers():
        raw("UPDATE federation_auditevent SET data = '{\"n\": 7}'::jsonb WHERE leaf_index = 1")
    leaves = [
        verifier.leaf_hash(event_leaf_bytes(e)) for e in AuditEvent.objects.order_by("leaf_index")
    ]
    assert verifier.root_from_leaf_hashes(leaves) != bytes(checkpoint.root_hash)
    # and the guard is back for the rest of the session
    refused("UPDATE federation_auditevent SET data = '{}'::jsonb WHERE leaf_index = 0")


def test_the_triggers_are_installed_on_every_guarded_table():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE 'concordat%%' AND t.tgenabled = 'O' ORDER BY 1, 2"
        )
        triggers = cursor.fetchall()
    assert triggers == [
        ("federation_auditevent", "concordat_append_only"),
        ("federation_auditevent", "concordat_append_only_delete"),
        ("federation_auditevent", "concordat_append_only_truncate"),
        ("federation_checkpoint", "concordat_append_only"),
        ("federation_checkpoint", "concordat_append_only_truncate"),
        ("federation_contribution", "concordat_append_only"),
        ("federation_contribution", "concordat_append_only_truncate"),
        ("federation_merklenode", "concordat_append_only"),
        ("federation_merklenode", "concordat_append_only_truncate"),
    ]


@pytest.mark.parametrize(
    "table",
    [
        "federation_auditevent",
        "federation_merklenode",
        "federation_checkpoint",
        "federation_contribution",
    ],
)
def test_truncate_of_an_append_only_table_is_refused(table):
    record(2)
    sequence_pending()
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
        raw(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.count() == 2 and Checkpoint.objects.exists()


def test_truncate_passes_only_the_superuser_bypass():
    record(2)
    with as_superuser_bypassing_triggers():
        raw("TRUNCATE federation_auditevent CASCADE")
    assert not AuditEvent.objects.exists()
    refused("TRUNCATE federation_merklenode")  # and the guard is back


def test_the_audit_trigger_compares_every_column_but_leaf_index():
    # A column added to AuditEvent must be added to the trigger's list, or it could be edited.
    migration = importlib.import_module("federation.migrations.0006_append_only_triggers")
    columns = {field.column for field in AuditEvent._meta.concrete_fields}
    assert set(migration.AUDIT_EVENT_COLUMNS) == columns - {"leaf_index"}


@pytest.mark.django_db(databases=[])
def test_migrations_apply_on_sqlite_where_there_are_no_triggers():
    name = f"migrate-check-{uuid.uuid4().hex[:8]}"
    folder = settings.BASE_DIR / "var" / name
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.demo", "CONCORDAT_DEMO_NAME": name}
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Applying federation.0006_append_only_triggers... OK" in done.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
