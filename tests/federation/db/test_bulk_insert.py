"""COPY writes (federation/db/bulk_insert.py): what a JSON column holds after ``copy_rows`` is what
the ORM would have stored, and a value JSON cannot hold is refused as before; UUIDs packed into
one parameter read back as themselves; rows written by ``insert_alike`` are those ``copy_rows``
writes, in order; rows made as they are written (``copy_stream``) are the rows ``copy_rows``
writes."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import DataError, IntegrityError, connection, transaction

from federation.contributions.models import Entry
from federation.db.bulk_insert import (
    _JsonbBinaryDumper,
    copy_new_rows,
    copy_rows,
    copy_stream,
    insert_alike,
    packed_uuids,
    uuid_array_sql,
)
from federation.propagation.models import Receipt
from federation.transparency.models import AuditEvent
from tests.support.sending import foreign_member

pytestmark = pytest.mark.django_db

VALUES = [
    [],
    ["a.hub", "b.hub"],
    [{"attestation": {"hub": "é\u2028\x1f", "v": 1, "n": None, "ok": True}, "signature": "x"}],
    [{"nested": [[1, -2, 2**62], {"": ""}]}],
]


@pytest.mark.parametrize("value", VALUES)
def test_a_copied_json_value_reads_back_as_the_orm_writes_it(value):
    contribution = foreign_member("alpha.hub").contribution()
    columns = ["contribution_id", "peer_hub", "via", "path", "attestations", "sent_to",
               "effective_scope", "digest", "received_at"]  # fmt: skip
    copy_rows(Receipt, columns, [(contribution.pk, "alpha.hub", "push", value, value, value,
                                  "federation", "0" * 64, datetime.now(UTC))])  # fmt: skip
    orm = Receipt.objects.create(
        contribution=contribution, peer_hub="beta.hub", via="push", path=value,
        attestations=value, sent_to=value, effective_scope="federation", digest="0" * 64,
    )  # fmt: skip
    copied = Receipt.objects.get(contribution=contribution, peer_hub="alpha.hub")
    orm.refresh_from_db()
    assert copied.path == copied.attestations == copied.sent_to == value
    assert (copied.path, copied.attestations) == (orm.path, orm.attestations)


def test_what_json_cannot_hold_is_refused_as_the_standard_library_does():
    dump = _JsonbBinaryDumper(object).dump  # jsonb's binary form: a version byte, then the text
    assert dump({1: "a"}) == b'\x01{"1":"a"}'  # as json.dumps: keys become strings
    with pytest.raises(TypeError):
        dump({"at": datetime.now(UTC)})
    assert dump(2**70) == b"\x01" + str(2**70).encode()  # beyond orjson: the standard library


@pytest.mark.skipif(connection.vendor != "postgresql", reason="uuid_array_sql is PostgreSQL's")
@pytest.mark.parametrize("count", [0, 1, 3])
def test_packed_uuids_read_back_as_the_same_uuids_in_order(count):
    uuids = [uuid.uuid4() for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {uuid_array_sql()}", [packed_uuids(uuids)])
        assert cursor.fetchone()[0] == uuids


ENTRY_COLUMNS = ["signal_type", "value", "state", "review_round", "created_at", "updated_at",
                 "state_changed_at"]  # fmt: skip


def _entry_rows(*values: str) -> list[tuple]:
    now = datetime.now(UTC)
    return [("md5", value, "pending", 1, now, now, now) for value in values]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite always answers None")
def test_new_rows_are_copied_with_their_ids_in_row_order():
    pks = copy_new_rows(Entry, ENTRY_COLUMNS, _entry_rows("a" * 32, "b" * 32), unique="u")
    assert dict(Entry.objects.values_list("pk", "value")) == dict(
        zip(pks, ["a" * 32, "b" * 32], strict=True)
    )


def test_when_one_row_exists_nothing_is_copied_and_the_transaction_goes_on():
    Entry.objects.create(signal_type="md5", value="b" * 32)
    rows = _entry_rows("a" * 32, "b" * 32, "c" * 32)
    assert copy_new_rows(Entry, ENTRY_COLUMNS, rows, unique="entry_signal_unique") is None
    assert list(Entry.objects.values_list("value", flat=True)) == ["b" * 32]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite always answers None")
def test_a_violation_of_another_constraint_is_raised():
    rows = [("md5", "a" * 32, "pending", -1, *_entry_rows("a")[0][4:])]  # review_round >= 0
    with pytest.raises(IntegrityError):
        copy_new_rows(Entry, ENTRY_COLUMNS, rows, unique="entry_signal_unique")
    rows = _entry_rows("a" * 32, "a" * 32)  # a unique violation, but of a constraint not named
    with pytest.raises(IntegrityError):
        copy_new_rows(Entry, ENTRY_COLUMNS, rows, unique="some_other_constraint")


def _shared_event_columns(**changed) -> dict:
    return {
        "occurred_at": datetime.now(UTC), "action": "entry.vetted", "actor_type": "user",
        "actor_id": "7", "actor_label": "alice", "organisation": "acme", "object_type": "entry",
        "data": {"from": "pending", "policy": {"quorum": 2, "rule": "é\u2028", "n": None}},
        **changed,
    }  # fmt: skip


def test_rows_alike_are_the_rows_copy_writes_in_the_lists_order():
    shared = _shared_event_columns()
    insert_alike(AuditEvent, each={"object_id": [12, 3, 7]}, same=shared)
    copy_rows(
        AuditEvent, [*shared, "object_id"], [(*shared.values(), str(pk)) for pk in (12, 3, 7)]
    )

    rows = list(AuditEvent.objects.order_by("pk").values_list(*shared, "object_id"))
    assert rows[:3] == rows[3:]
    assert [row[-1] for row in rows[:3]] == ["12", "3", "7"]  # an integer's text, in order


def test_no_rows_alike_write_nothing_and_lists_of_two_lengths_are_refused():
    insert_alike(AuditEvent, each={"object_id": []}, same=_shared_event_columns())
    assert not AuditEvent.objects.exists()
    with pytest.raises(ValueError):
        insert_alike(AuditEvent, each={"object_id": [1], "id": [1, 2]}, same={})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite does not check lengths")
def test_a_shared_text_too_long_for_its_column_is_refused_not_cut():
    with pytest.raises(DataError):
        insert_alike(
            AuditEvent, each={"object_id": [1]}, same=_shared_event_columns(action="x" * 65)
        )


def test_copies_of_one_model_by_other_columns_each_write_their_own():
    # The column list and types are kept per model and columns, in order: the second COPY,
    # its columns in another order, must not be written as the first's.
    at = datetime(2026, 12, 6, 19, 30, tzinfo=UTC)
    columns = ["occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
               "object_type", "object_id", "data"]  # fmt: skip
    rows = [(at, f"test.{n}", "hub", "a.hub", "A", "", "peer", str(n), {"n": n}) for n in range(3)]
    copy_rows(AuditEvent, columns, [rows[0]])
    copy_rows(AuditEvent, columns[::-1], [rows[1][::-1]])
    copy_rows(AuditEvent, columns, [rows[2]])
    stored = AuditEvent.objects.filter(action__startswith="test.").order_by("pk")
    assert list(stored.values_list(*columns)) == rows


def test_rows_made_as_they_are_written_are_the_rows_a_list_writes():
    shared = _shared_event_columns()
    columns = [*shared, "object_id"]
    made = []

    def rows():
        for n in (5, 1, 9):
            made.append(n)
            yield (*shared.values(), str(n))

    generator = rows()
    assert copy_stream(AuditEvent, columns, generator) == 3
    assert made == [5, 1, 9] and next(generator, None) is None
    copy_rows(AuditEvent, columns, [(*shared.values(), str(n)) for n in (5, 1, 9)])
    stored = list(AuditEvent.objects.order_by("pk").values_list(*columns))
    assert stored[:3] == stored[3:]
    assert [row[-1] for row in stored[:3]] == ["5", "1", "9"]


def test_no_rows_made_start_no_copy(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert copy_stream(AuditEvent, ["object_id"], iter(())) == 0
    assert not AuditEvent.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a COPY is PostgreSQL's")
def test_a_row_that_fails_midway_writes_none_of_them():
    shared = _shared_event_columns()

    def rows():
        yield (*shared.values(), "1")
        yield (*shared.values(), "x" * 201)  # over object_id's limit of 200

    with pytest.raises(DataError), transaction.atomic():
        copy_stream(AuditEvent, [*shared, "object_id"], rows())
    assert not AuditEvent.objects.exists()
