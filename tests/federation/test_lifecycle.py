"""The entry lifecycle (federation.lifecycle): the transition table, its audit events, the
transaction they share, and the cost of bulk moves."""

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from federation import downstream, lifecycle
from federation.contributions.models import Entry
from federation.contributions.services import FIRST_CHUNK_SIZE
from federation.lifecycle import TRANSITIONS, TransitionRefused, entries_transition
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision
from members.actors import Actor
from members.models import Organisation
from tests.support.parties import random_hex
from tests.support.vetting import set_policy

BULK = "/api/v1/contributions/bulk/"
STATES = Entry.State.values
ACTOR = Actor.system("test")

EXPECTED_TABLE = {
    ("pending", "vetted"): "entry.vetted",
    ("pending", "rejected"): "entry.rejected",
    ("pending", "retracted"): "entry.retracted",
    ("vetted", "disputed"): "entry.disputed",
    ("vetted", "retracted"): "entry.retracted",
    ("disputed", "vetted"): "entry.dispute_resolved",
    ("disputed", "rejected"): "entry.dispute_resolved",
    ("disputed", "retracted"): "entry.retracted",
    ("rejected", "pending"): "entry.reopened",
    ("rejected", "retracted"): "entry.retracted",
    ("retracted", "pending"): "entry.reopened",
}


def make_entries(count: int, state: str) -> list[Entry]:
    return Entry.objects.bulk_create(
        Entry(signal_type="md5", value=random_hex(32), state=state) for _ in range(count)
    )


def entry_events(entry: Entry) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(object_type="entry", object_id=str(entry.pk)).order_by("pk")
    )


def documented_table() -> dict[tuple[str, str], str]:
    """The transition table of docs/vetting.md, as written there."""
    text = (Path(settings.BASE_DIR) / "docs" / "vetting.md").read_text()
    section = text.split("### The transition table", 1)[1]
    rows = [line for line in section.split("\n\n")[2].splitlines() if line.startswith("|")]
    table = {}
    for line in rows[2:]:  # after the header and its rule
        from_states, to_state, action, _when = (c.strip() for c in line.strip("|").split("|"))
        for from_state in from_states.split(", "):
            table[(from_state, to_state)] = action.strip("`")
    return table


def test_the_table_is_the_documented_one():
    assert dict(TRANSITIONS) == EXPECTED_TABLE == documented_table()


@pytest.mark.parametrize("from_state,to_state", sorted(EXPECTED_TABLE))
def test_an_allowed_transition_moves_the_entry_and_writes_its_event(db, from_state, to_state):
    (entry,) = make_entries(1, from_state)
    before = Entry.objects.get(pk=entry.pk)

    (move,) = entries_transition(
        entry_ids=[entry.pk], to=to_state, actor=ACTOR, reason="because", data={"extra": 1}
    )

    entry.refresh_from_db()
    assert entry.state == to_state
    assert entry.state_changed_at > before.state_changed_at
    assert entry.updated_at == entry.state_changed_at
    reopened = to_state == "pending"
    assert entry.review_round == before.review_round + (1 if reopened else 0)
    assert move.review_round == entry.review_round
    resolved = from_state == "disputed" and to_state in ("vetted", "rejected")
    assert (entry.dispute_resolved_at == entry.state_changed_at) is resolved
    (event,) = entry_events(entry)
    assert event.action == EXPECTED_TABLE[(from_state, to_state)] == move.action
    assert (event.actor_type, event.actor_id) == ("system", "test")
    assert event.data == {"from": from_state, "to": to_state, "extra": 1, "reason": "because"}


@pytest.mark.parametrize(
    "from_state,to_state",
    [pair for pair in itertools.product(STATES, STATES) if pair not in EXPECTED_TABLE],
)
def test_a_refused_transition_changes_nothing_and_writes_no_event(db, from_state, to_state):
    (entry,) = make_entries(1, from_state)
    before = Entry.objects.filter(pk=entry.pk).values().get()

    with pytest.raises(TransitionRefused) as refused:
        entries_transition(entry_ids=[entry.pk], to=to_state, actor=ACTOR)

    assert (refused.value.status, refused.value.code) == (409, "transition_refused")
    assert refused.value.details["refused"] == {str(entry.pk): from_state}
    assert Entry.objects.filter(pk=entry.pk).values().get() == before
    assert entry_events(entry) == []


def test_one_refused_entry_refuses_the_whole_call(db):
    movable = make_entries(3, "pending")
    (stuck,) = make_entries(1, "vetted")

    with pytest.raises(TransitionRefused):
        entries_transition(entry_ids=[e.pk for e in [*movable, stuck]], to="rejected", actor=ACTOR)

    assert set(Entry.objects.values_list("state", flat=True)) == {"pending", "vetted"}
    assert not AuditEvent.objects.exists()


def test_only_from_leaves_other_states_alone(db):
    rejected = make_entries(2, "rejected")
    pending = make_entries(2, "pending")

    moves = entries_transition(
        entry_ids=[e.pk for e in [*rejected, *pending]],
        to="pending",
        only_from=["rejected", "retracted"],
        actor=ACTOR,
    )

    assert sorted(m.entry_id for m in moves) == sorted(e.pk for e in rejected)
    assert dict(Entry.objects.values_list("pk", "review_round")) == {
        **{e.pk: 2 for e in rejected},
        **{e.pk: 1 for e in pending},
    }
    assert AuditEvent.objects.filter(action=Action.ENTRY_REOPENED).count() == 2
    assert AuditEvent.objects.count() == 2


def test_the_events_roll_back_with_the_state_change(db):
    (entry,) = make_entries(1, "pending")

    with pytest.raises(RuntimeError), transaction.atomic():
        entries_transition(entry_ids=[entry.pk], to="vetted", actor=ACTOR)
        assert Entry.objects.get(pk=entry.pk).state == "vetted"
        assert len(entry_events(entry)) == 1
        raise RuntimeError("the caller's transaction fails later")

    assert Entry.objects.get(pk=entry.pk).state == "pending"
    assert entry_events(entry) == []


def test_the_state_change_rolls_back_when_its_event_cannot_be_written(db, monkeypatch):
    (entry,) = make_entries(1, "pending")

    def broken(records=(), **alike):
        list(records)
        raise RuntimeError("the log refused the event")

    # Moves whose events differ only in their entry write them with audit_record_for_ids, other
    # moves of one action with audit_record_alike, the rest with _many.
    monkeypatch.setattr(lifecycle, "audit_record_many", broken)
    monkeypatch.setattr(lifecycle, "audit_record_alike", broken)
    monkeypatch.setattr(lifecycle, "audit_record_for_ids", broken)
    with pytest.raises(RuntimeError), transaction.atomic():
        entries_transition(entry_ids=[entry.pk], to="vetted", actor=ACTOR)

    assert Entry.objects.get(pk=entry.pk).state == "pending"


def test_the_downstream_hook_runs_in_the_transaction_with_every_move(db, monkeypatch):
    entries = make_entries(3, "vetted")
    seen = []

    def hook(transitions, *, now):
        assert connection.in_atomic_block
        # The change and its events are already there for the hook to build on.
        assert Entry.objects.filter(state="retracted").count() == 3
        assert AuditEvent.objects.filter(action=Action.ENTRY_RETRACTED).count() == 3
        seen.extend((t.entry_id, t.from_state, t.to_state) for t in transitions)

    monkeypatch.setattr(downstream, "entries_transitioned", hook)
    entries_transition(entry_ids=[e.pk for e in entries], to="retracted", actor=ACTOR)

    assert sorted(seen) == sorted((e.pk, "vetted", "retracted") for e in entries)


def test_an_actor_for_a_member_names_its_organisation_in_the_event(db, acme_submitter):
    (entry,) = make_entries(1, "pending")
    actor = Actor.for_principal(acme_submitter.principal)

    entries_transition(entry_ids=[entry.pk], to="vetted", actor=actor)

    (event,) = entry_events(entry)
    assert (event.organisation, event.actor_type, event.actor_label) == ("acme", "user", "alice")


@pytest.mark.parametrize("count", [1, 3000])
def test_a_bulk_transition_costs_a_fixed_number_of_queries(
    db, django_assert_max_num_queries, count
):
    entries = make_entries(count, "vetted")

    # The lock-and-read, the UPDATE, the events, the change-stream INSERT … SELECT and the TAXII
    # versions' INSERT (the lifecycle hook). Events that differ in their data go in one COPY,
    # which is not a query that Django counts (3,000 here); one statement per call whatever the
    # number of events.
    with django_assert_max_num_queries(5):
        moves = entries_transition(
            entry_ids=[e.pk for e in entries],
            to="retracted",
            actor=ACTOR,
            data_by_entry={e.pk: {"n": i} for i, e in enumerate(entries)},
        )

    assert len(moves) == count
    assert Entry.objects.filter(state="retracted").count() == count
    assert AuditEvent.objects.filter(action=Action.ENTRY_RETRACTED).count() == count


def test_ingest_reopens_and_auto_vets_in_bulk_without_a_query_per_entry(
    db, acme_submitter, django_assert_max_num_queries
):
    """A trusted member re-adds signals other members rejected: every entry is reopened (new
    round) and vetted by the policy, through the lifecycle, in a bounded number of queries."""
    set_policy(auto_vet_trusted=True)
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(trusted=True)

    def readd(count: int) -> int:
        signals = [{"type": "md5", "value": random_hex(32)} for _ in range(count)]
        Entry.objects.bulk_create(
            Entry(signal_type="md5", value=s["value"], state="rejected") for s in signals
        )
        items = [acme_submitter.signed(signal=s) for s in signals]
        with CaptureQueriesContext(connection) as captured:
            response = acme_submitter.client.post(BULK, {"items": items}, format="json")
        assert response.json()["created"] == count
        values = [s["value"] for s in signals]
        assert set(Entry.objects.filter(value__in=values).values_list("state", "review_round")) == {
            ("vetted", 2)
        }
        assert (
            AuditEvent.objects.filter(
                action=Action.ENTRY_REOPENED, object_id__in=_ids(values)
            ).count()
            == count
        )
        assert (
            AuditEvent.objects.filter(
                action=Action.ENTRY_VETTED, object_id__in=_ids(values)
            ).count()
            == count
        )
        assert (
            Decision.objects.filter(entry__value__in=values, kind="policy", review_round=2).count()
            == count
        )
        return len(captured.captured_queries)

    readd(1)  # warm up
    # Both within a request's first chunk (a chunk's statements are a fixed number whatever its
    # size; each further chunk of a request adds its own).
    small, large = readd(10), readd(FIRST_CHUNK_SIZE)
    assert small == large
    # 18 when written, 21 with the change stream's rows, 23 with the federation outbox's two
    # INSERT … SELECT statements (the vetted entries' adds from the lifecycle hook; adds to entries
    # already shared, from ingest): one each per call, whatever the number of entries or peers;
    # 24 with the TAXII versions' INSERT (the lifecycle hook); 28 with the chunk's try at
    # inserting its entries as new (its savepoint, the ids drawn, the rollback and release: the
    # entries exist, so the upsert follows).
    assert large <= 28


def test_a_trusted_bulk_ingest_vets_its_new_entries_without_locking_and_reading_them_again(
    db, acme_submitter
):
    """The ingest's upsert read the entries' states under row locks it still holds: the policy's
    move is one UPDATE, with no SELECT … FOR UPDATE of the entries after it."""
    set_policy(auto_vet_trusted=True)
    Organisation.objects.filter(pk=acme_submitter.organisation.pk).update(trusted=True)
    items = [
        acme_submitter.signed(signal={"type": "md5", "value": random_hex(32)}) for _ in range(5)
    ]

    with CaptureQueriesContext(connection) as captured:
        response = acme_submitter.client.post(BULK, {"items": items}, format="json")

    assert response.json()["created"] == 5
    assert Entry.objects.filter(state="vetted").count() == 5
    assert AuditEvent.objects.filter(action=Action.ENTRY_VETTED).count() == 5
    entry_locks = [
        q["sql"]
        for q in captured.captured_queries
        if "FOR UPDATE" in q["sql"] and '"federation_entry"' in q["sql"].split("FROM", 1)[-1][:40]
    ]
    assert entry_locks == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL plan")
def test_a_bulk_move_finds_its_entries_by_primary_key_however_many_there_are(db):
    """The move's UPDATE reads its entries by primary key: joined on the id alone, the planner
    hashed the moved ids against a scan of every entry (of 50,000 here, for 1,000 moved)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO federation_entry (signal_type, value, state, review_round, created_at,"
            " updated_at, state_changed_at) SELECT 'md5', md5(i::text), 'pending', 1, now(), now(),"
            " now() FROM generate_series(1, 50000) AS i"
        )
        cursor.execute("ANALYZE federation_entry")
    moving = make_entries(1000, "pending")

    with CaptureQueriesContext(connection) as captured:
        entries_transition(
            entry_ids=[e.pk for e in moving],
            to="vetted",
            actor=ACTOR,
            locked_states={e.pk: "pending" for e in moving},
        )

    (update,) = [q["sql"] for q in captured if "UPDATE federation_entry" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {update}")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Seq Scan on federation_entry" not in plan, plan
    assert Entry.objects.filter(state="vetted").count() == 1000


def test_given_locked_states_an_entry_in_another_state_is_left_alone(db):
    """``locked_states`` is the caller's word; the update still checks each state it is given."""
    moving, elsewhere = make_entries(2, "pending")
    Entry.objects.filter(pk=elsewhere.pk).update(state="rejected")

    with transaction.atomic():
        moves = entries_transition(
            entry_ids=[moving.pk, elsewhere.pk],
            to="vetted",
            actor=ACTOR,
            only_from=["pending"],
            locked_states={moving.pk: "pending", elsewhere.pk: "pending"},
        )

    assert [(m.entry_id, m.from_state, m.to_state) for m in moves] == [
        (moving.pk, "pending", "vetted")
    ]
    assert Entry.objects.get(pk=elsewhere.pk).state == "rejected"
    assert entry_events(elsewhere) == []
    assert [e.action for e in entry_events(moving)] == [Action.ENTRY_VETTED]


def test_entries_inserted_in_their_new_state_are_recorded_as_moved_without_an_update(db):
    """``inserted``: the caller's insert already wrote the move (as the ingest inserts a trusted
    member's new entries vetted); its event is written, the row is not updated again."""
    moving = make_entries(1, "pending")[0]
    (inserted,) = make_entries(1, "vetted")
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    Entry.objects.filter(pk=inserted.pk).update(review_round=7, updated_at=long_ago)

    with transaction.atomic():
        moves = entries_transition(
            entry_ids=[moving.pk, inserted.pk],
            to="vetted",
            actor=ACTOR,
            locked_states={moving.pk: "pending", inserted.pk: "pending"},
            inserted={inserted.pk: 7},
        )

    assert [(m.entry_id, m.from_state, m.review_round) for m in moves] == [
        (moving.pk, "pending", 1),
        (inserted.pk, "pending", 7),
    ]
    assert Entry.objects.get(pk=inserted.pk).updated_at == long_ago  # not updated
    assert [e.data["from"] for e in entry_events(inserted)] == ["pending"]
    assert Entry.objects.get(pk=moving.pk).state == "vetted"


@pytest.mark.parametrize("to, locked", [("vetted", False), ("pending", True)])
def test_inserted_entries_need_locked_states_and_a_move_from_pending(db, to, locked):
    (entry,) = make_entries(1, to)
    with pytest.raises(ValueError, match="move from pending"):
        entries_transition(
            entry_ids=[entry.pk],
            to=to,
            actor=ACTOR,
            locked_states={entry.pk: "pending"} if locked else None,
            inserted={entry.pk: 1},
        )


class _Portable:
    """The connection as the lifecycle's portable (SQLite) branch sees it: any vendor but
    PostgreSQL's, on the test database."""

    vendor = "portable"

    def __init__(self, connection):
        self._connection = connection

    def __getattr__(self, name):
        return getattr(self._connection, name)


@pytest.mark.parametrize("branch", ["postgresql", "portable"])
def test_rounds_and_dispute_resolution_are_set_by_either_branch(db, monkeypatch, branch):
    if branch == "portable":
        monkeypatch.setattr(lifecycle, "connections", {"default": _Portable(connection)})
    rejected, retracted = make_entries(2, "pending")
    Entry.objects.filter(pk=rejected.pk).update(state="rejected", review_round=3)
    Entry.objects.filter(pk=retracted.pk).update(state="retracted", review_round=1)
    disputed, vetted = make_entries(2, "vetted")
    Entry.objects.filter(pk=disputed.pk).update(state="disputed")

    with CaptureQueriesContext(connection) as captured:
        reopened = entries_transition(
            entry_ids=[rejected.pk, retracted.pk], to="pending", actor=ACTOR
        )
    assert any("unnest" in q["sql"] for q in captured) == (branch == "postgresql")
    withdrawn = entries_transition(
        entry_ids=[disputed.pk, vetted.pk], to="retracted", actor=ACTOR, only_from=["disputed"]
    )
    Entry.objects.filter(pk=vetted.pk).update(state="disputed")
    resolved = entries_transition(entry_ids=[vetted.pk], to="rejected", actor=ACTOR)

    assert [(t.entry_id, t.from_state, t.review_round) for t in reopened] == [
        (rejected.pk, "rejected", 4),
        (retracted.pk, "retracted", 2),
    ]
    assert [(t.entry_id, t.action) for t in withdrawn] == [(disputed.pk, Action.ENTRY_RETRACTED)]
    assert [(t.entry_id, t.action) for t in resolved] == [
        (vetted.pk, Action.ENTRY_DISPUTE_RESOLVED)
    ]
    rows = dict(Entry.objects.values_list("pk", "dispute_resolved_at"))
    assert rows[disputed.pk] is None  # withdrawn while disputed: not a resolution
    assert rows[vetted.pk] is not None


def _ids(values: list[str]) -> list[str]:
    return [str(pk) for pk in Entry.objects.filter(value__in=values).values_list("pk", flat=True)]
