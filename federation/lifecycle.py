"""An entry's lifecycle: the one place that changes an entry's state.

Every change of state (a quorum reached, an automatic vetting, an admin ruling, a dispute and its
resolution, a retraction, a reopening on a new add) goes through ``entries_transition``. It checks
the move against ``TRANSITIONS`` (docs/vetting.md, "States of an entry"), locks and updates the
rows in bulk, and writes the audit events in bulk, all in the caller's transaction. Then it hands
the moves to ``federation.downstream.entries_transitioned`` (the change stream, the outbox and
TAXII), in that same transaction (docs/architecture.md).

The vetting services decide *whether* an entry moves (votes, quorum, policy, feedback); this module
decides *how*, so each move leaves the same trail whoever caused it.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from federation import downstream
from federation.contributions.models import Entry
from federation.errors import Conflict
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import (
    AuditRecord,
    audit_record_alike,
    audit_record_for_ids,
    audit_record_many,
)
from members.actors import Actor

State = Entry.State

# (from, to) → the audit action the move writes. A move not listed is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    (State.PENDING, State.VETTED): Action.ENTRY_VETTED,
    (State.PENDING, State.REJECTED): Action.ENTRY_REJECTED,
    (State.VETTED, State.DISPUTED): Action.ENTRY_DISPUTED,
    (State.DISPUTED, State.VETTED): Action.ENTRY_DISPUTE_RESOLVED,
    (State.DISPUTED, State.REJECTED): Action.ENTRY_DISPUTE_RESOLVED,
    # Every contributor withdrew its add: from any state but retracted.
    (State.PENDING, State.RETRACTED): Action.ENTRY_RETRACTED,
    (State.VETTED, State.RETRACTED): Action.ENTRY_RETRACTED,
    (State.DISPUTED, State.RETRACTED): Action.ENTRY_RETRACTED,
    (State.REJECTED, State.RETRACTED): Action.ENTRY_RETRACTED,
    # A new add reopens the entry for a new review round.
    (State.REJECTED, State.PENDING): Action.ENTRY_REOPENED,
    (State.RETRACTED, State.PENDING): Action.ENTRY_REOPENED,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry's move, as made: ``review_round`` is the round after the move."""

    entry_id: int
    from_state: str
    to_state: str
    review_round: int
    action: str


class TransitionRefused(Conflict):
    """The entry's state does not allow the move (409 ``transition_refused``)."""

    code = "transition_refused"


def transition_allowed(from_state: str, to_state: str) -> bool:
    return (from_state, to_state) in TRANSITIONS


def entries_transition(
    *,
    entry_ids: Iterable[int],
    to: str,
    actor: Actor,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    data_by_entry: Mapping[int, Mapping[str, Any]] | None = None,
    only_from: Collection[str] | None = None,
    locked_states: Mapping[int, str] | None = None,
    inserted: Mapping[int, int] | None = None,
    now: datetime | None = None,
) -> list[Transition]:
    """Move the entries ``entry_ids`` to state ``to``; returns the moves made, by entry id.

    - Each entry's current state is read under a row lock (``SELECT … FOR UPDATE``, in id order
      so concurrent callers do not deadlock); a move not in ``TRANSITIONS`` refuses the whole
      call with ``TransitionRefused``, and nothing is changed.
    - ``only_from`` (the bulk paths): entries in another state are left alone, silently; the
      filter is applied under the lock, so it cannot race.
    - ``locked_states``: the entries' states as the caller read them under row locks that its
      transaction still holds (the ingest's upsert): they are not locked and read again, so the
      move is one statement. An entry absent from it is left alone; the update still checks each
      state it is given, and an entry found in another one is left alone too.
    - ``inserted`` (with ``locked_states``, which gives them as pending): entries this
      transaction inserted already in state ``to`` (id: review round), as the ingest inserts a
      trusted member's new entries vetted. Each is recorded as moved from pending (its event and
      everything downstream, as for the others) without an UPDATE: the insert wrote what the
      UPDATE would have (``state``, and ``state_changed_at`` and ``updated_at`` equal to
      ``created_at``, which must be ``now``). Only for a move that pending allows.
    - The update sets ``state``, ``state_changed_at`` and ``updated_at``; a move to pending starts
      a new review round; a dispute's resolution sets ``dispute_resolved_at``.
    - Each move writes one audit event (``TRANSITIONS`` names it) with ``data``:
      ``{"from", "to", **data, **data_by_entry[id]}``, plus ``"reason"`` when one is given.

    A fixed number of queries whatever the number of entries: a lock-and-read (none with
    ``locked_states``), one UPDATE, one bulk insert of events (and whatever the downstream step
    adds, also in bulk).
    """
    now = now or timezone.now()
    ids = sorted(set(entry_ids))
    if to not in State.values:
        raise ValueError(f"unknown entry state {to!r}")
    if not ids:
        return []
    if inserted and (locked_states is None or not transition_allowed(State.PENDING, to)):
        raise ValueError("entries inserted in their new state move from pending, under locks")
    args = (ids, to, actor, reason, data, data_by_entry, only_from, locked_states, inserted, now)
    if transaction.get_connection().in_atomic_block:
        # The caller's transaction, without a savepoint: a refusal is raised before any write,
        # and leaves the caller's transaction usable.
        return _transition(*args)
    with transaction.atomic():
        return _transition(*args)


def _transition(
    ids, to, actor, reason, data, data_by_entry, only_from, locked_states, inserted, now
) -> list[Transition]:
    if locked_states is None:
        rows = Entry.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        if only_from is not None:
            rows = rows.filter(state__in=list(only_from))
        current = dict(rows.values_list("pk", "state"))
    else:
        current = {pk: locked_states[pk] for pk in ids if pk in locked_states}
        if only_from is not None:
            current = {pk: state for pk, state in current.items() if state in only_from}
    refused = {pk: state for pk, state in current.items() if not transition_allowed(state, to)}
    if refused:
        raise TransitionRefused(
            f"An entry cannot move to {to} from its current state.",
            details={"to": to, "refused": {str(pk): state for pk, state in refused.items()}},
        )
    if not current:
        return []
    moved = []
    if inserted:
        # Already in ``to`` by the caller's insert: recorded as moved, not updated again.
        moved = [(pk, State.PENDING, inserted[pk]) for pk in current if pk in inserted]
        if len(moved) < len(current):
            moved += _update({pk: s for pk, s in current.items() if pk not in inserted}, to, now)
            moved.sort()
    else:
        moved = _update(current, to, now)
    transitions = [
        Transition(
            entry_id=pk,
            from_state=from_state,
            to_state=to,
            review_round=review_round,
            action=TRANSITIONS[(from_state, to)],
        )
        for pk, from_state, review_round in moved
    ]
    _audit_moves(transitions, actor, reason, data or {}, data_by_entry or {})
    # What follows the moves (change stream, outbox, TAXII) commits or rolls back with them.
    downstream.entries_transitioned(transitions, now=now)
    return transitions


def _audit_moves(
    transitions: list[Transition],
    actor: Actor,
    reason: str,
    data: Mapping[str, Any],
    data_by_entry: Mapping[int, Mapping[str, Any]],
) -> None:
    """The moves' audit events (``entries_transition``), in one statement."""
    because = {Key.REASON: reason} if reason else {}
    first = transitions[0]
    first_data = data_by_entry.get(first.entry_id, {})
    if isinstance(actor, Actor) and all(
        t.from_state == first.from_state and data_by_entry.get(t.entry_id, {}) == first_data
        for t in transitions
    ):
        # One event but for its entry (a bulk auto-vet: 10,000 entry.vetted of one policy): its
        # data written once for all.
        audit_record_for_ids(
            action=first.action,
            actor=actor,
            organisation=actor.organisation_slug,
            object_type=ObjectType.ENTRY,
            object_ids=[t.entry_id for t in transitions],
            data={
                Key.FROM: first.from_state,
                Key.TO: first.to_state,
                **data,
                **first_data,
                **because,
            },
            occurred_at=timezone.now(),
        )
        return
    events = [
        (
            str(t.entry_id),
            {
                Key.FROM: t.from_state,
                Key.TO: t.to_state,
                **data,
                **data_by_entry.get(t.entry_id, {}),
                **because,
            },
        )
        for t in transitions
    ]
    actions = {t.action for t in transitions}
    if len(actions) == 1 and isinstance(actor, Actor):
        # One action for all (a retraction from several states): the same rows, their shared
        # columns built once (2 µs an event less than an AuditRecord each).
        audit_record_alike(
            action=actions.pop(),
            actor=actor,
            organisation=actor.organisation_slug,
            object_type=ObjectType.ENTRY,
            objects=events,
            occurred_at=timezone.now(),
        )
        return
    audit_record_many(
        AuditRecord(
            action=t.action,
            actor=actor,
            organisation=actor.organisation_slug,
            object_type=ObjectType.ENTRY,
            object_id=object_id,
            data=event_data,
        )
        for t, (object_id, event_data) in zip(transitions, events, strict=True)
    )


def _update(current: dict[int, str], to: str, now: datetime) -> list[tuple[int, str, int]]:
    """Move the entries of ``current`` (id: the state it is in) to ``to``, each only if it is
    still in that state; returns ``(id, from state, review round after the move)`` of each one
    moved, by id. A move to pending starts a new review round; a dispute's resolution sets
    ``dispute_resolved_at`` (feedback from before it no longer counts towards a new dispute)."""
    resolving = {State.DISPUTED} if _resolves_disputes(to) else set()
    connection = connections[router.db_for_write(Entry)]
    if connection.vendor == "postgresql":
        # One statement whatever the number of entries, its ids and states as two arrays.
        sets = ["state = %s", "state_changed_at = %s", "updated_at = %s"]
        params: list[Any] = [to, now, now]
        if to == State.PENDING:
            sets.append("review_round = e.review_round + 1")
        if resolving & set(current.values()):
            sets.append(
                "dispute_resolved_at = CASE WHEN m.from_state = %s THEN %s "
                "ELSE e.dispute_resolved_at END"
            )
            params += [State.DISPUTED, now]
        # ``e.id = ANY(…)`` finds the entries by primary key whatever the table's size: joined
        # on ``e.id = m.id`` alone, the planner hashed the arrays against a sequential scan of
        # every entry until the table outgrew that (a 1,000-entry move among 50,000: 2x slower).
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH m (id, from_state) AS (SELECT * FROM unnest(%s::bigint[], %s::text[])) "  # noqa: S608 (fixed clauses)
                f"UPDATE federation_entry AS e SET {', '.join(sets)} FROM m "
                "WHERE e.id = ANY(ARRAY(SELECT id FROM m)) AND e.id = m.id "
                "AND e.state = m.from_state "
                "RETURNING e.id, m.from_state, e.review_round",
                [list(current), list(current.values()), *params],
            )
            return sorted(cursor.fetchall())
    changes: dict[str, Any] = {"state": to, "state_changed_at": now, "updated_at": now}
    if to == State.PENDING:
        changes["review_round"] = F("review_round") + 1
    for from_state in sorted(set(current.values())):
        ids = [pk for pk, state in current.items() if state == from_state]
        resolved = {"dispute_resolved_at": now} if from_state in resolving else {}
        Entry.objects.filter(pk__in=ids, state=from_state).update(**changes, **resolved)
    # Only the rows this update moved (an entry already in ``to`` was not moved by it).
    moved = Entry.objects.filter(pk__in=list(current), state=to, state_changed_at=now)
    moved = moved.order_by("pk")
    return [(pk, current[pk], round_) for pk, round_ in moved.values_list("pk", "review_round")]


def _resolves_disputes(to: str) -> bool:
    return TRANSITIONS.get((State.DISPUTED, to)) == Action.ENTRY_DISPUTE_RESOLVED
