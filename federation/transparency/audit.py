"""Writing audit events. Callers write them inside the transaction of the change they record, so
an event exists exactly when its change does; the sequencer later gives each a leaf in the log.

The leaf bytes of an event (what the Merkle tree hashes) are documented in docs/transparency.md:
RFC 8785 canonical JSON of ``event_document(event)``.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import rfc8785
from django.db import transaction
from django.utils import timezone

from federation.bulk_insert import copy_rows
from federation.transparency.models import AuditEvent
from members.actors import Actor, audit_actor

EVENT_KIND = "concordat.audit-event"
EVENT_VERSION = 1


@dataclass(frozen=True)
class AuditRecord:
    """An event to be written: what happened, by whom, to what."""

    action: str
    actor: "Actor | Mapping[str, str]"  # an Actor, or (until every caller is converted) its dict
    organisation: str = ""
    object_type: str = ""
    object_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_model(self, occurred_at) -> AuditEvent:
        actor = audit_actor(self.actor)
        return AuditEvent(
            occurred_at=occurred_at,
            action=self.action,
            actor_type=actor["type"],
            actor_id=actor["id"],
            actor_label=actor["label"],
            organisation=self.organisation,
            object_type=self.object_type,
            object_id=str(self.object_id),
            data=dict(self.data),
        )


def audit_record(record: AuditRecord) -> AuditEvent:
    """Write one audit event in the current transaction."""
    event = record.to_model(timezone.now())
    event.save(force_insert=True)
    _schedule_sequencing()
    return event


_EVENT_COLUMNS = [
    "occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
    "object_type", "object_id", "data",
]  # fmt: skip


def audit_record_many(records: Iterable[AuditRecord]) -> int:
    """Write many audit events with one bulk insert (COPY) in the current transaction."""
    now = timezone.now()
    rows = [
        (
            now,
            record.action,
            *audit_actor(record.actor).values(),
            record.organisation,
            record.object_type,
            str(record.object_id),
            dict(record.data),
        )
        for record in records
    ]
    copy_rows(AuditEvent, _EVENT_COLUMNS, rows)
    if rows:
        _schedule_sequencing()
    return len(rows)


def event_document(event: AuditEvent) -> dict[str, Any]:
    """The JSON object whose canonical bytes are the event's Merkle leaf."""
    return {
        "kind": EVENT_KIND,
        "v": EVENT_VERSION,
        "id": event.pk,
        "occurred_at": event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": event.action,
        "actor": {"type": event.actor_type, "id": event.actor_id, "label": event.actor_label},
        "organisation": event.organisation,
        "object": {"type": event.object_type, "id": event.object_id},
        "data": event.data,
    }


def event_leaf_bytes(event: AuditEvent) -> bytes:
    return rfc8785.dumps(event_document(event))


def _schedule_sequencing() -> None:
    """Ask for the log to be sequenced once this transaction commits (never if it rolls back)."""
    from federation.transparency.tasks import request_sequencing

    transaction.on_commit(request_sequencing)
