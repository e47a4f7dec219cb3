"""The bulk export: gzip NDJSON of the shared set, one snapshot, ending with the cursor from which
delta sync continues without a gap."""

import contextlib
import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
from django.db import connections, transaction

from federation.contributions.models import Entry
from federation.sync.changes import sync_changes_record
from federation.sync.cursors import position_of
from federation.sync.export import shared_set_lines
from federation.sync.sequencer import sync_sequence_pending
from federation.sync.stream import stream_state
from federation.vetting.services import incident_declare
from members.actors import Actor
from tests.support.parties import random_hex
from tests.support.sync import (
    apply,
    export_lines,
    pull,
    pull_all,
    shared_set_in_database,
)
from tests.support.vetting import (
    approve,
    feedback,
    reviewer_of,
    set_policy,
    submit_entry,
)


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True
    acme.save()
    return acme_submitter


def retract(party, entry):
    return party.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )


def test_the_export_is_the_shared_set_ending_with_a_cursor(
    trusted_acme, acme_submitter, globex_submitter, globex_reviewer
):
    shared = [submit_entry(trusted_acme) for _ in range(3)]
    gone = submit_entry(trusted_acme)
    retract(trusted_acme, gone)
    submit_entry(globex_submitter)  # pending: not shared
    sync_sequence_pending()

    lines = export_lines(globex_reviewer.client.get("/api/v1/sync/export"))

    *items, end = lines
    assert [item["signal"]["value"] for item in items] == [e.value for e in shared]
    assert {item["op"] for item in items} == {"upsert"}
    assert items[0]["contributors"] == [{"member": "acme", "hub": "hub.test.concordat"}]
    assert end["op"] == "end" and end["count"] == 3
    assert position_of(end["cursor"]) == stream_state().last_position


def test_export_then_delta_equals_the_database(trusted_acme, globex_submitter, globex_reviewer):
    set_policy(dispute_threshold=1)
    entries = [submit_entry(trusted_acme) for _ in range(4)]
    sync_sequence_pending()
    lines = export_lines(globex_reviewer.client.get("/api/v1/sync/export"))
    copy = {}
    apply(copy, lines[:-1])
    assert copy == shared_set_in_database()

    retract(trusted_acme, entries[0])
    feedback(globex_reviewer, entries[1], "disagree")
    globex_submitter.submit(
        signal={"type": "pdq", "value": entries[2].value}, labels=["glorification"]
    )
    approve(reviewer_of("initech"), submit_entry(globex_submitter))
    copy, _ = pull_all(globex_reviewer, after=lines[-1]["cursor"], copy=copy)

    assert copy == shared_set_in_database()
    assert len(copy) == 4


def test_export_documents_equal_the_delta_documents_across_chunks(
    trusted_acme, globex_submitter, globex_reviewer
):
    # The export builds its chunks with its own statement (aggregates over the chunk's id range);
    # every entry must still read exactly as the delta API renders it: several labels in order,
    # contributors of two organisations, an incident, a disputed state, the best quality.
    set_policy(dispute_threshold=1)
    incident = incident_declare(name="CIP", actor=Actor.system("test"))
    entries = [submit_entry(trusted_acme, labels=["propaganda", "attack-footage"])]
    entries.append(submit_entry(trusted_acme, incident=str(incident.pk)))
    entries += [submit_entry(trusted_acme) for _ in range(3)]
    globex_submitter.submit(
        signal={"type": "pdq", "value": entries[0].value}, labels=["glorification"]
    )
    feedback(globex_reviewer, entries[3], "disagree")
    gone = submit_entry(trusted_acme)
    retract(trusted_acme, gone)
    sync_sequence_pending()
    delta = {
        orjson.dumps(change["signal"]): change
        for change in pull_all_changes(globex_reviewer)
        if change["op"] == "upsert"
    }

    exported = _read(shared_set_lines(chunk_size=2))

    *items, end = exported
    assert end["count"] == len(items) == len(delta) == 5
    assert {orjson.dumps(item["signal"]): item for item in items} == delta
    # ... written alike, key for key in the same order (a contributor's too), so that a client
    # may compare or hash what it stored from either.
    assert [orjson.dumps(item) for item in items] == [
        orjson.dumps(delta[orjson.dumps(item["signal"])]) for item in items
    ]
    assert [item["signal"]["value"] for item in items] == [e.value for e in entries]
    first = items[0]
    assert first["labels"] == ["attack-footage", "glorification", "propaganda"]
    assert [c["member"] for c in first["contributors"]] == ["acme", "globex"]
    assert items[1]["incidents"] == [str(incident.pk)]
    assert items[3]["state"] == "disputed"


def pull_all_changes(party) -> list[dict]:
    changes, after = [], None
    while True:
        page = pull(party, after=after)
        changes += page["changes"]
        after = page["next"]
        if not page["more"]:
            return changes


# --- The snapshot, with real transactions ---------------------------------------------------------


def _vetted_entries(count: int) -> list[int]:
    with transaction.atomic():
        ids = [
            Entry.objects.create(
                signal_type="pdq", value=random_hex(64), state=Entry.State.VETTED
            ).pk
            for _ in range(count)
        ]
        sync_changes_record(entry_ids=ids, reason="vetted")
    return ids


def _in_another_connection(work) -> None:
    def run():
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def _retract(entry_id: int) -> None:
    with transaction.atomic():
        Entry.objects.filter(pk=entry_id).update(state=Entry.State.RETRACTED)
        sync_changes_record(entry_ids=[entry_id], reason="retracted")


def _read(stream) -> list[dict]:
    return [orjson.loads(line) for chunk in stream for line in chunk.splitlines()]


@pytest.mark.django_db(transaction=True)
def test_the_export_is_one_snapshot_and_delta_continues_from_its_cursor(globex_reviewer):
    ids = _vetted_entries(6)
    sync_sequence_pending()
    stream = shared_set_lines(chunk_size=2)
    first_chunk = _read([next(stream)])

    # While the export runs, another transaction retracts an entry it has not reached yet.
    _in_another_connection(lambda: (_retract(ids[-1]), sync_sequence_pending()))
    rest = _read(stream)

    *items, end = first_chunk + rest
    assert [item["signal"]["value"] for item in items] == list(
        Entry.objects.filter(pk__in=ids).order_by("pk").values_list("value", flat=True)
    )
    assert position_of(end["cursor"]) == 6
    copy = {}
    apply(copy, items)
    copy, _ = pull_all(globex_reviewer, after=end["cursor"], copy=copy)
    assert copy == shared_set_in_database()
    assert len(copy) == 5


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_but_not_yet_sequenced_is_sent_again_never_lost(globex_reviewer):
    ids = _vetted_entries(3)
    sync_sequence_pending()
    _retract(ids[0])  # committed, not sequenced when the export's snapshot is taken

    *items, end = _read(shared_set_lines())

    assert len(items) == 2  # the snapshot already shows the retraction
    assert position_of(end["cursor"]) == 3  # ... which is not below the cursor
    copy = {}
    apply(copy, items)
    page_copy, _ = pull_all(globex_reviewer, after=end["cursor"], copy=dict(copy))
    assert page_copy == copy == shared_set_in_database()


@pytest.mark.django_db(transaction=True)
def test_the_export_runs_in_repeatable_read(globex_reviewer):
    _vetted_entries(1)
    stream = shared_set_lines()
    next(stream)
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        assert cursor.fetchone()[0] == "repeatable read"
    stream.close()
    assert not connection.in_atomic_block


def _backends(*, settled_at: int | None = None) -> int:
    """Connections to the test database; with ``settled_at``, waits (up to 5 s) for the count to
    fall to it, since a backend leaves pg_stat_activity shortly after its client disconnects."""
    deadline = time.monotonic() + 5
    while True:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            count = cursor.fetchone()[0]
        if settled_at is None or count <= settled_at or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_export_reads_in_parallel_in_its_snapshot_and_closes_its_readers(
    globex_reviewer, settings
):
    settings.SYNC_EXPORT_READERS = 3
    ids = _vetted_entries(9)
    before = _backends()
    stream = shared_set_lines(chunk_size=2)
    first = _read([next(stream)])
    assert _backends() > before  # the readers' connections, in the export's snapshot
    rest = _read(stream)
    *items, end = first + rest
    assert [item["signal"]["value"] for item in items] == list(
        Entry.objects.filter(pk__in=ids).order_by("pk").values_list("value", flat=True)
    )
    assert end["count"] == 9
    assert _backends(settled_at=before) == before

    abandoned = shared_set_lines(chunk_size=2)
    next(abandoned)
    abandoned.close()  # a client that goes away mid-export
    assert _backends(settled_at=before) == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("nested", [False, True], ids=["readers", "caller's transaction"])
def test_export_times_keep_six_digits_in_utc_as_the_delta_api_writes_them(globex_reviewer, nested):
    # orjson writes a UTC datetime itself but leaves out a zero fraction: the export must not.
    ids = _vetted_entries(2)
    whole = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    Entry.objects.filter(pk=ids[0]).update(created_at=whole, updated_at=whole)
    Entry.objects.filter(pk=ids[1]).update(created_at=whole.replace(microsecond=42))
    sync_sequence_pending()

    with transaction.atomic() if nested else contextlib.nullcontext():
        *items, _end = _read(shared_set_lines(chunk_size=1))

    assert items[0]["first_seen"] == "2026-03-04T05:06:07.000000Z"
    assert items[1]["first_seen"] == "2026-03-04T05:06:07.000042Z"
    delta = {c["signal"]["value"]: c for c in pull_all_changes(globex_reviewer)}
    assert items == [delta[item["signal"]["value"]] for item in items]


def test_a_chunk_splits_into_one_document_per_line_whatever_its_strings_hold():
    # The chunk is encoded as one JSON array and split where one document ends and the next
    # begins; a string that looks like that boundary must not split a document.
    from federation.sync import export

    moment = datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
    hostile = 'x"},{"op":"upsert"}\n'
    rows = {
        export._EXPORT_ENTRIES_SQL: [
            (1, "pdq", "a" * 64, "vetted", moment, moment, moment),
            (2, "md5", "b" * 32, "disputed", moment, moment, moment),
        ],
        export._EXPORT_LABELS_SQL: [(1, 7), (2, 7), (2, 8)],
        export._EXPORT_ADDS_SQL: [
            (1, 1, hostile, "active", 50, None),
            (2, 1, "a.hub", "active", None, None),
            (2, 2, "b.hub", "withdrawn", 99, "8c6f0a4e-3b1e-4f7a-9d2a-0c1b2a3d4e5f"),
        ],
    }
    count, text = export._render_chunk(
        lambda sql, params: rows[sql], (0, 2), {7: "propaganda", 8: "attack-footage"},
        {1: "acme", 2: "globex"},
    )  # fmt: skip
    lines = text.split(b"\n")
    assert count == 2 and lines[-1] == b"" and len(lines) == 3
    first, second = (orjson.loads(line) for line in lines[:2])
    assert first["contributors"] == [{"member": "acme", "hub": hostile}]
    assert first["quality"] == 50 and first["first_seen"] == "2026-03-04T05:06:07.000008Z"
    assert second["labels"] == ["attack-footage", "propaganda"]
    assert second["contributors"] == [{"member": "acme", "hub": "a.hub"}]  # withdrawn: not listed
    assert second["incidents"] == ["8c6f0a4e-3b1e-4f7a-9d2a-0c1b2a3d4e5f"]
    assert second["quality"] is None  # only an active contribution's quality counts
