"""Writing audit events. Callers write them inside the transaction of the change they record, so
an event exists exactly when its change does; the sequencer later gives each a leaf in the log.

The leaf bytes of an event (what the Merkle tree hashes) are documented in docs/transparency.md:
RFC 8785 canonical JSON of ``event_document(event)`` (``canonical_json_bytes``: the rfc8785
package's bytes, by orjson where it writes the same).
"""

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from federation.canonical import (
    JCS_INT_MAX,
    canonical_json_bytes,
    canonical_json_part,
    in_fast_domain,
)
from federation.db.bulk_insert import copy_rows, copy_stream, insert_alike
from federation.enqueue import TaskName, nudge, nudge_soon
from federation.transparency.models import AuditEvent
from members.actors import Actor

EVENT_KIND = "concordat.audit-event"
EVENT_VERSION = 1

# A text column's value that is too long is cut to the column's width, ending in this marker, so
# that an event is always written: a derived value such as the actor label "<username> via
# <credential name>" (150 + 100 characters) can exceed its column although each part is legal,
# and a failed insert would be a 500 with no event. The cut value is what the leaf signs.
TRUNCATION_MARKER = "…"
COLUMN_LIMITS: dict[str, int] = {
    f.name: f.max_length
    for f in AuditEvent._meta.get_fields()
    if getattr(f, "max_length", None) and f.get_internal_type() == "CharField"
}


def bounded(column: str, value: object) -> str:
    """``value`` as text that fits the audit column ``column`` (cut with the marker if needed)."""
    text = "" if value is None else str(value)
    limit = COLUMN_LIMITS[column]
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def leaf_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as an event stores it, so that its leaf can always be written: an integer beyond
    RFC 8785's (±(2^53 - 1)), which the leaf's encoder refuses, is stored as its decimal text,
    and so is a float that JSON cannot hold (NaN, ±infinity), as a text too long for its column
    is cut: the sequencer cannot pass over an event, so one whose leaf cannot be written would
    stop the log (docs/transparency.md, "What an event's data may hold"). Everything else is
    kept as it is. The caller's data is checked in one walk (``in_fast_domain``) and copied
    further only when it holds something else (a float, a tuple, a subclass)."""
    data = dict(data)
    return data if in_fast_domain(data) else _leaf_ready_value(data)


def _leaf_ready_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -JCS_INT_MAX <= value <= JCS_INT_MAX else str(int(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {key: _leaf_ready_value(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_leaf_ready_value(inner) for inner in value]
    return value  # anything else is stored, or refused, as the JSON encoder does


@dataclass(frozen=True)
class AuditRecord:
    """An event to be written: what happened, by whom, to what."""

    action: str
    actor: Actor
    organisation: str = ""
    object_type: str = ""
    object_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.actor, Actor):  # one way to name who acted (members/actors.py)
            raise TypeError(f"an audit record's actor is an Actor, not {type(self.actor).__name__}")

    def to_model(self, occurred_at) -> AuditEvent:
        actor = self.actor
        return AuditEvent(
            occurred_at=occurred_at,
            action=self.action,
            actor_type=actor.audit_type,
            actor_id=actor.id,
            actor_label=actor.label,
            organisation=self.organisation,
            object_type=self.object_type,
            object_id=str(self.object_id),
            data=leaf_ready(self.data),
        )


def audit_record(record: AuditRecord) -> AuditEvent:
    """Write one audit event in the current transaction."""
    event = record.to_model(timezone.now())
    for column in COLUMN_LIMITS:
        setattr(event, column, bounded(column, getattr(event, column)))
    event.save(force_insert=True)
    _schedule_sequencing()
    return event


_EVENT_COLUMNS = [
    "occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
    "object_type", "object_id", "data",
]  # fmt: skip


def audit_insert_sql(record: AuditRecord, *, occurred_at) -> tuple[str, list]:
    """The event ``audit_record`` writes, as ``INSERT INTO <audit table> (<columns>) SELECT %s,
    …`` and its parameters (the texts bounded as there), for a caller that writes it inside a
    statement of its own on PostgreSQL, which may add a ``WHERE`` (the event written only if it
    holds) and a ``RETURNING``. The match service sends it with its
    check, so that a request makes one round trip, not two (docs/matching.md). The caller calls
    ``audit_inserted`` once the statement has written the event."""
    actor = record.actor
    row = _bounded_row(
        (
            occurred_at,
            record.action,
            actor.audit_type,
            actor.id,
            actor.label,
            record.organisation,
            record.object_type,
            str(record.object_id),
            json.dumps(leaf_ready(record.data)),
        )
    )
    return AUDIT_INSERT_SQL, list(row)


# ``audit_insert_sql``'s statement: the same for every event (a caller may prepare it).
AUDIT_INSERT_SQL = 'INSERT INTO "{table}" ({columns}) SELECT {values}'.format(
    table=AuditEvent._meta.db_table,
    columns=", ".join(f'"{column}"' for column in _EVENT_COLUMNS),
    values=", ".join("%s::jsonb" if column == "data" else "%s" for column in _EVENT_COLUMNS),
)


def audit_inserted() -> None:
    """An event of ``audit_insert_sql`` was written in the current transaction: ask for the log
    to be sequenced once it commits, as ``audit_record`` does, but through ``nudge_soon``: the
    match service's events come one per request, and its answer need not wait for the broker."""
    transaction.on_commit(_request_sequencing_soon)


def audit_record_many(records: Iterable[AuditRecord], *, occurred_at=None) -> int:
    """Write many audit events with one bulk insert (COPY) in the current transaction.

    ``occurred_at`` (default: now) lets a service date the events with the very time it stored
    on its rows, so that a report counting rows by that time and the log agree to the microsecond.
    """
    now = occurred_at or timezone.now()
    rows = [
        _bounded_row(
            (
                now,
                record.action,
                (actor := record.actor).audit_type,
                actor.id,
                actor.label,
                record.organisation,
                record.object_type,
                str(record.object_id),
                leaf_ready(record.data),
            )
        )
        for record in records
    ]
    copy_rows(AuditEvent, _EVENT_COLUMNS, rows)
    if rows:
        _schedule_sequencing()
    return len(rows)


def audit_record_alike(
    *,
    action: str,
    actor: Actor,
    organisation: str,
    object_type: str,
    objects: Iterable[tuple[str, Mapping[str, Any]]],
    occurred_at,
) -> int:
    """``audit_record_many`` of events that differ only in their object id and data (``objects``:
    ``(object_id, data)`` pairs), such as a bulk ingest's ``contribution.accepted``: the shared
    columns are bounded once, not per event; the rows written are the same. Each ``data`` is
    written as given, not through ``leaf_ready``: its callers build it from the database's ids
    and texts, and that walk would cost a bulk ingest about 2 µs an event."""
    shared = tuple(_shared_columns(action, actor, organisation, object_type).values())
    limit = COLUMN_LIMITS["object_id"]
    # Made as they are written (``copy_stream``): the server inserts the first events while
    # the rest are made, from ``objects`` if it is a generator too.
    count = copy_stream(
        AuditEvent,
        _EVENT_COLUMNS,
        (
            (
                occurred_at,
                *shared,
                object_id if len(object_id) <= limit else bounded("object_id", object_id),
                data,
            )
            for object_id, data in objects
        ),
    )
    if count:
        _schedule_sequencing()
    return count


def audit_record_for_ids(
    *,
    action: str,
    actor: Actor,
    organisation: str,
    object_type: str,
    object_ids: Sequence[int],
    data: Mapping[str, Any],
    occurred_at,
) -> int:
    """``audit_record_alike`` of events that share their data too, differing only in their
    object, named by an integer id (a trusted member's bulk auto-vet: 10,000 ``entry.vetted``
    of one policy): one statement, the data sent and parsed once rather than per event; the
    rows written are the same."""
    insert_alike(
        AuditEvent,
        each={"object_id": object_ids},
        same={
            "occurred_at": occurred_at,
            **_shared_columns(action, actor, organisation, object_type),
            "data": leaf_ready(data),
        },
    )
    if object_ids:
        _schedule_sequencing()
    return len(object_ids)


def _shared_columns(action: str, actor: Actor, organisation: str, object_type: str) -> dict:
    """The columns of events alike, bounded once for all, in ``_EVENT_COLUMNS`` order."""
    return {
        column: bounded(column, value)
        for column, value in (
            ("action", action),
            ("actor_type", actor.audit_type),
            ("actor_id", actor.id),
            ("actor_label", actor.label),
            ("organisation", organisation),
            ("object_type", object_type),
        )
    }


_BOUNDED_POSITIONS = [
    (position, column) for position, column in enumerate(_EVENT_COLUMNS) if column in COLUMN_LIMITS
]


_BOUNDED_LIMITS = [(position, COLUMN_LIMITS[column]) for position, column in _BOUNDED_POSITIONS]


def _bounded_row(row: tuple) -> tuple:
    """``row`` with each text column made to fit (``bounded``): ``row`` itself when every one is
    text that fits, as nearly all are, so that a bulk write checks lengths rather than copies."""
    for position, limit in _BOUNDED_LIMITS:
        value = row[position]
        if value.__class__ is not str or len(value) > limit:
            values = list(row)
            for position_, column in _BOUNDED_POSITIONS:
                values[position_] = bounded(column, values[position_])
            return tuple(values)
    return row


def event_document(event: AuditEvent) -> dict[str, Any]:
    """The JSON object whose canonical bytes are the event's Merkle leaf."""
    return row_document(
        event.pk, event.occurred_at, event.action, event.actor_type, event.actor_id,
        event.actor_label, event.organisation, event.object_type, event.object_id, event.data,
    )  # fmt: skip


# The audit columns ``row_document`` takes, in its argument order (the sequencer reads them raw).
DOCUMENT_COLUMNS = [
    "id", "occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
    "object_type", "object_id", "data",
]  # fmt: skip


# The leaf's occurred_at text formatted by PostgreSQL, equal to the strftime above for the years
# 1000-9999 (where %Y and YYYY both give four digits); NULL elsewhere, where the sequencer reads
# the moment itself (OCCURRED_AT_OUTSIDE_SQL) and formats it in Python.
_FOUR_DIGIT_YEARS = (
    "occurred_at >= '1000-01-01 00:00:00+00' AND occurred_at < '10000-01-01 00:00:00+00'"
)
OCCURRED_AT_SQL = (
    f"CASE WHEN {_FOUR_DIGIT_YEARS} THEN "
    """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"""
)
OCCURRED_AT_OUTSIDE_SQL = f"CASE WHEN {_FOUR_DIGIT_YEARS} THEN NULL ELSE occurred_at END"


def signed_time(moment) -> str:
    """A moment as an event's signed JSON writes it: UTC, microseconds, ``Z`` (also the form of
    the reports' CSV timestamps, so that they compare with the log's leaves as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_document(
    pk, occurred_at, action, actor_type, actor_id, actor_label, organisation, object_type,
    object_id, data,
) -> dict[str, Any]:  # fmt: skip
    """``event_document`` from the column values (``DOCUMENT_COLUMNS``), with no model instance.
    ``occurred_at`` is the moment, or its text already formatted as the leaf has it
    (``OCCURRED_AT_SQL``: the sequencer has PostgreSQL format it)."""
    return {
        "kind": EVENT_KIND,
        "v": EVENT_VERSION,
        "id": pk,
        "occurred_at": occurred_at if type(occurred_at) is str else signed_time(occurred_at),
        "action": action,
        "actor": {"type": actor_type, "id": actor_id, "label": actor_label},
        "organisation": organisation,
        "object": {"type": object_type, "id": object_id},
        "data": data,
    }


def event_leaf_bytes(event: AuditEvent) -> bytes:
    return canonical_json_bytes(event_document(event))


def row_leaf_bytes(row: Sequence, *, data_checked: bool = False) -> bytes:
    """``canonical_json_bytes(row_document(*row))``, the sequencer's way: the envelope around
    ``data`` is known (fixed ASCII keys, the event's id, text columns), so only ``data`` is
    walked for ``in_fast_domain`` (not at all if ``data_checked``: the caller walked it), and
    orjson writes the whole document. Any other row (an id beyond JCS's integers, a column that
    is not text, data outside the domain) takes ``canonical_json_bytes`` as before."""
    pk, _, action, actor_type, actor_id, actor_label, organisation, object_type, object_id, data = (
        row
    )
    document = row_document(*row)
    if (
        type(pk) is int
        and -JCS_INT_MAX <= pk <= JCS_INT_MAX
        and str is type(action) is type(actor_type) is type(actor_id) is type(actor_label)
        and str is type(organisation) is type(object_type) is type(object_id)
        and (data_checked or in_fast_domain(data))
    ):
        try:
            return canonical_json_part(document)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: the reference encoder's answer, error included
    return canonical_json_bytes(document)


def _schedule_sequencing() -> None:
    """Ask for the log to be sequenced once this transaction commits (never if it rolls back).

    Once per transaction: any ask still registered answers for this one. Django drops the asks
    of a savepoint rolled back (``savepoint_rollback``), so a registered ask was made either in a
    savepoint released since (its events are the enclosing block's now) or in one that this
    call is still inside (rolled back only with this call's events): it runs whenever this one
    would. (Requiring the ask to have been made outside every savepoint this call is inside
    missed those of released savepoints: a received batch asked twice, its events written
    inside and after a nested block.) A received batch writes its events in several statements,
    and each extra ask was a broker send and an empty sequencer run (about 12 µs of CPU per
    received item)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for _savepoints, callback, _robust in connection.run_on_commit:
            if callback is _request_sequencing:
                return
    transaction.on_commit(_request_sequencing)


def _request_sequencing() -> None:
    nudge(TaskName.SEQUENCE_AUDIT_LOG)


def _request_sequencing_soon() -> None:
    nudge_soon(TaskName.SEQUENCE_AUDIT_LOG)
