"""The change stream's ordering guarantee with real concurrent transactions on PostgreSQL:
positions only for committed rows, consecutive, and a reader following the cursor ends with
exactly the database's shared set."""

import itertools
import random
import threading
import time

import orjson
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from federation.contributions.models import SHARED_STATES, Entry
from federation.sync.changes import sync_changes_record
from federation.sync.models import EntryChange
from federation.sync.sequencer import sync_sequence_pending
from federation.sync.stream import changes_after
from tests.support.parties import random_hex

STATES = [
    Entry.State.VETTED,
    Entry.State.DISPUTED,
    Entry.State.RETRACTED,
    Entry.State.REJECTED,
    Entry.State.PENDING,
]


def _apply(copy: dict, items) -> None:
    for item in map(orjson.loads, items):
        key = item["signal"]["value"]
        if item["op"] == "upsert":
            copy[key] = item["state"]
        else:
            copy.pop(key, None)


def _in_thread(target, *args):
    def run():
        try:
            target(*args)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_a_reader_following_the_cursor_end_equal_to_the_database():
    assert connection.vendor == "postgresql"
    entries = [Entry.objects.create(signal_type="pdq", value=random_hex(64)).pk for _ in range(60)]
    owned = [entries[i::4] for i in range(4)]
    # One commit out of id order for certain (the random writers below make more in most runs,
    # but not in every one): a change row written first, so with the lower id, commits after a
    # later one has been sequenced.
    first_written, later_sequenced = threading.Event(), threading.Event()

    def early_writer() -> None:
        with transaction.atomic():
            Entry.objects.filter(pk=owned[0][0]).update(state="vetted")
            sync_changes_record(entry_ids=[owned[0][0]], reason="test")
            first_written.set()
            later_sequenced.wait(30)

    early = _in_thread(early_writer)
    early.start()
    assert first_written.wait(30)
    with transaction.atomic():
        Entry.objects.filter(pk=owned[1][0]).update(state="vetted")
        sync_changes_record(entry_ids=[owned[1][0]], reason="test")
    sync_sequence_pending()
    later_sequenced.set()
    early.join()
    writers_done = threading.Event()
    failures: list[BaseException] = []
    reader_copy: dict = {}
    positions_read: list[int] = []

    def writer(number: int) -> None:
        rng = random.Random(number)
        for _ in range(30):
            with transaction.atomic():
                chosen = rng.sample(owned[number], rng.randint(1, 3))
                for pk in sorted(chosen):
                    Entry.objects.filter(pk=pk).update(state=rng.choice(STATES))
                sync_changes_record(entry_ids=chosen, reason="test")
                time.sleep(rng.uniform(0, 0.01))  # hold the transaction: commits interleave

    def sequencer() -> None:
        while not writers_done.is_set():
            sync_sequence_pending(batch_size=7)
            time.sleep(0.002)

    def reader() -> None:
        position = None
        while True:
            final = getattr(reader, "final", False)  # read before the page, never after
            page = changes_after(after=position, limit=5)
            _apply(reader_copy, page.items)
            assert page.position >= (position or 0)
            position = page.position
            positions_read.append(position)
            # Stop after a pass that began once the final sequencing (below) had run.
            if final and not page.more:
                return
            time.sleep(0.001)

    def guarded(target, *args):
        try:
            target(*args)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    writers = [_in_thread(guarded, writer, n) for n in range(4)]
    others = [_in_thread(guarded, sequencer) for _ in range(2)]
    reading = _in_thread(guarded, reader)
    for thread in [*writers, *others, reading]:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in others:
        thread.join()
    sync_sequence_pending()
    reader.final = True
    reading.join(timeout=60)

    assert not failures, failures
    assert not reading.is_alive()
    in_database = dict(Entry.objects.filter(state__in=SHARED_STATES).values_list("value", "state"))
    assert reader_copy == in_database
    rows = list(EntryChange.objects.order_by("id").values_list("id", "position"))
    positions = sorted(position for _, position in rows)
    assert positions == list(range(1, len(rows) + 1))  # every row, consecutively, once
    # Commits really were out of id order: a later id got an earlier position (the first two
    # rows, written so above; in most runs the random writers' too).
    assert rows[0][1] > rows[1][1]
    assert any(a[1] > b[1] for a, b in itertools.pairwise(rows))
    assert positions_read[-1] == len(rows)


@pytest.mark.django_db(transaction=True)
def test_an_uncommitted_change_gets_no_position_until_it_commits():
    entry = Entry.objects.create(signal_type="pdq", value=random_hex(64))
    written, release = threading.Event(), threading.Event()

    def write():
        with transaction.atomic():
            Entry.objects.filter(pk=entry.pk).update(state=Entry.State.VETTED)
            sync_changes_record(entry_ids=[entry.pk], reason="vetted")
            written.set()
            release.wait(10)

    thread = _in_thread(write)
    thread.start()
    written.wait(10)
    try:
        assert sync_sequence_pending() == 0
        assert changes_after(after=None, limit=10).items == []
    finally:
        release.set()
        thread.join()
    assert sync_sequence_pending() == 1
    (item,) = map(orjson.loads, changes_after(after=None, limit=10).items)
    assert (item["op"], item["state"]) == ("upsert", "vetted")


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_never_reaches_the_stream():
    entry = Entry.objects.create(signal_type="pdq", value=random_hex(64))

    with pytest.raises(RuntimeError), transaction.atomic():
        Entry.objects.filter(pk=entry.pk).update(state=Entry.State.VETTED)
        sync_changes_record(entry_ids=[entry.pk], reason="vetted")
        raise RuntimeError("the service failed after writing")

    assert sync_sequence_pending() == 0
    assert not EntryChange.objects.exists()


def _reasons(entry) -> list[str]:
    return list(
        EntryChange.objects.filter(entry=entry).order_by("id").values_list("reason", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_one_transaction_writes_one_change_per_entry_and_separate_ones_do_not_merge():
    entry = Entry.objects.create(signal_type="pdq", value=random_hex(64), state=Entry.State.VETTED)
    other = Entry.objects.create(signal_type="pdq", value=random_hex(64), state=Entry.State.VETTED)

    with transaction.atomic():
        sync_changes_record(entry_ids=[entry.pk, other.pk], reason="vetted")
        Entry.objects.filter(pk=entry.pk).update(state=Entry.State.RETRACTED)
        assert sync_changes_record(entry_ids=[entry.pk], reason="retracted") == 1

    assert _reasons(entry) == ["retracted"]
    assert _reasons(other) == ["vetted"]
    # The one row comes after the other entry's, where the transaction's last change of it was.
    rows = list(EntryChange.objects.order_by("id").values_list("entry_id", flat=True))
    assert rows == [other.pk, entry.pk]

    with transaction.atomic():
        sync_changes_record(entry_ids=[entry.pk], reason="retracted")
    assert _reasons(entry) == ["retracted", "retracted"]  # another transaction: its own row
    assert sync_sequence_pending() == 3


@pytest.mark.django_db
def test_entries_just_moved_into_a_shared_state_get_the_rows_a_look_at_them_would_give():
    """``shared`` (the lifecycle's moves to vetted or disputed): a row for each entry without
    reading it; the same rows, in the same order, and replacing the transaction's earlier row."""
    entries = [
        Entry.objects.create(signal_type="pdq", value=random_hex(64), state=state)
        for state in (Entry.State.VETTED, Entry.State.DISPUTED, Entry.State.VETTED)
    ]
    ids = [entry.pk for entry in reversed(entries)]
    sync_changes_record(entry_ids=ids[:1], reason="labels")
    looked = sync_changes_record(entry_ids=ids, reason="vetted")
    looked_rows = list(EntryChange.objects.order_by("id").values_list("entry_id", "reason"))
    EntryChange.objects.all().delete()
    sync_changes_record(entry_ids=ids[:1], reason="labels")

    with CaptureQueriesContext(connection) as captured:
        assert sync_changes_record(entry_ids=ids, reason="vetted", shared=True) == looked == 3
    assert list(EntryChange.objects.order_by("id").values_list("entry_id", "reason")) == (
        looked_rows
    )
    if connection.vendor == "postgresql":
        assert not any('federation_entry"' in q["sql"] for q in captured), captured


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_leaves_the_transactions_earlier_change_in_place():
    entry = Entry.objects.create(signal_type="pdq", value=random_hex(64), state=Entry.State.VETTED)

    with transaction.atomic():
        sync_changes_record(entry_ids=[entry.pk], reason="vetted")
        with pytest.raises(RuntimeError), transaction.atomic():
            sync_changes_record(entry_ids=[entry.pk], reason="labels")
            assert _reasons(entry) == ["labels"]
            raise RuntimeError("the inner step failed")
        assert _reasons(entry) == ["vetted"]  # back with the savepoint
        sync_changes_record(entry_ids=[entry.pk], reason="disputed")

    assert _reasons(entry) == ["disputed"]
