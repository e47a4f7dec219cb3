"""``manage.py hub_db_role``: the least-privilege role docs/transparency.md recommends. It may
read and write the hub's tables but not DELETE or TRUNCATE the append-only ones; it is refused
for a superuser or an owner of the tables; ``--sql`` prints the same SQL and changes nothing."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent
from members.actors import Actor

pytestmark = pytest.mark.django_db

ROLE = "concordat_test_app"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("hub_db_role", *args, stdout=out)
    return out.getvalue()


def as_role(sql: str) -> None:
    """Run ``sql`` as ROLE (a superuser may SET ROLE to any role), in a savepoint."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL ROLE "{ROLE}"')
        cursor.execute(sql)


def test_the_role_may_write_but_not_delete_or_truncate_the_log():
    audit_record_many([AuditRecord(action="test.event", actor=Actor.system("test"))])
    run("--role", ROLE)
    as_role("SELECT count(*) FROM federation_auditevent")
    as_role(
        "INSERT INTO federation_auditevent (occurred_at, action, actor_type, actor_id, "
        "actor_label, organisation, object_type, object_id, data) VALUES (now(), 'test.event', "
        "'system', 'test', '', '', '', '', '{}')"
    )
    as_role("DELETE FROM federation_outboxitem")  # an ordinary table: DELETE is granted
    for table in (
        "federation_auditevent",
        "federation_checkpoint",
        "federation_contribution",
        "federation_merklenode",
    ):
        with pytest.raises(DatabaseError, match="permission denied"):
            as_role(f"DELETE FROM {table}")  # noqa: S608
        with pytest.raises(DatabaseError, match="permission denied"):
            as_role(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.filter(action="test.event").count() == 2


def test_granting_is_audited_and_idempotent():
    first = run("--role", ROLE)
    assert '"created": true' in first
    assert '"created": false' in run("--role", ROLE)
    events = AuditEvent.objects.filter(action=Action.DATABASE_ROLE_GRANTED).order_by("pk")
    assert [(e.object_type, e.object_id, e.data["created"]) for e in events] == [
        ("database_role", ROLE, True),
        ("database_role", ROLE, False),
    ]
    assert "federation_auditevent" in events[0].data["append_only"]
    assert any("REVOKE DELETE" in statement for statement in events[0].data["statements"])


def test_sql_only_prints_and_changes_nothing():
    printed = run("--role", ROLE, "--sql")
    assert f'CREATE ROLE "{ROLE}" LOGIN' in printed
    assert "REVOKE DELETE ON" in printed and "TRUNCATE" not in printed
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [ROLE])
        assert cursor.fetchone() == (0,)
    assert not AuditEvent.objects.filter(action=Action.DATABASE_ROLE_GRANTED).exists()


@pytest.mark.parametrize("role", ["postgres", "Robert'); DROP TABLE x;--", "9lives", ""])
def test_a_superuser_owner_or_bad_name_is_refused(role):
    with pytest.raises(CommandError):
        run("--role", role)
    assert not AuditEvent.objects.filter(action=Action.DATABASE_ROLE_GRANTED).exists()
