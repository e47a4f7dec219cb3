"""How PostgreSQL stores an audit event's data (migration 0040): compressed with lz4 where the
server has it, and read back exactly as written either way."""

import pytest
from django.db import DatabaseError, connection, transaction

from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent
from members.actors import Actor

pytestmark = pytest.mark.django_db


def server_has_lz4() -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL default_toast_compression = 'lz4'")
    except DatabaseError:
        return False
    return True


def test_event_data_is_compressed_with_lz4_where_the_server_has_it():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's column setting")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = 'federation_auditevent'::regclass AND attname = 'data'"
        )
        (method,) = cursor.fetchone()
    assert method == ("l" if server_has_lz4() else "")


def test_a_large_event_reads_back_as_written_and_is_stored_compressed():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's column setting")
    digests = [f"{i:064x}" for i in range(500)]  # as a received batch's event names its items
    audit_record_many(
        [AuditRecord(action="test.large", actor=Actor.system("test"), data={"items": digests})]
    )
    event = AuditEvent.objects.get(action="test.large")
    assert event.data == {"items": digests}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_compression(data) FROM federation_auditevent WHERE id = %s",
                       [event.pk])  # fmt: skip
        (method,) = cursor.fetchone()
    assert method == ("lz4" if server_has_lz4() else "pglz")
