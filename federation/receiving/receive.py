"""Receiving a batch from a peer hub: every check of docs/federation.md ("Receiving"), then storage.

``batch_receive`` is used by the push endpoint (``POST /api/v1/federation/batches``) and by the
pull client (``federation.receiving.pull``) alike, so both paths apply exactly the same checks.
It runs the three phases in order:

1. the envelope (``envelope``): the whole batch is refused, ``BatchRefused``, or goes on;
2. each item alone (``items``): rejected items get a per-item result, the others go on;
3. storage (``storage``), in one transaction per batch, run again after a lost race.
"""

import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from federation.db.retry import atomic_retrying_lost_races
from federation.monitoring.counters import batch_refused_counted, received_counted
from federation.propagation.models import Receipt
from federation.receiving.envelope import (
    BatchRefused,
    batch_refused_record,
    check_envelope,
    known_hubs,
    readable_batch_id,
)
from federation.receiving.items import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    ReceivedBatch,
    ReceivedItemResult,
    check_items,
)
from federation.receiving.storage import batch_store
from members.actors import Actor
from members.models import Peer


@dataclass
class BatchResult:
    """What ``batch_receive`` answers: one result per item, in batch order."""

    batch_id: uuid_module.UUID
    results: list[ReceivedItemResult]
    feed: dict[str, Any] | None = None

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    def as_response(self) -> dict[str, Any]:
        return {
            "batch": str(self.batch_id),
            "accepted": self.count(ACCEPTED),
            "duplicates": self.count(DUPLICATE),
            "rejected": self.count(REJECTED),
            "results": [result.as_dict() for result in self.results],
        }


def batch_receive(
    *,
    peer: Peer,
    body: object,
    via: str,
    evidence: Callable[[], Mapping[str, Any]] | None = None,
    feed_after: int | None = None,
) -> BatchResult:
    """Check and apply a batch ``body`` (the parsed JSON) sent by ``peer``, by push or pull.

    Raises ``BatchRefused`` (after auditing ``federation.batch_refused``) when the batch as a
    whole is refused; otherwise returns one result per item. ``feed_after`` (the pull client):
    the cursor asked for, which the batch's ``feed.after`` must equal. ``evidence`` gives the
    request's evidence for a refusal's event, asked only then (a push's is the SHA-256 of its
    body: about 1 µs per item of a 500-item batch, for nothing when the batch is accepted)."""
    if via not in Receipt.Via.values:
        raise ValueError(f"via must be one of {Receipt.Via.values}")
    actor = Actor.peer(peer.hub_id, peer.name)
    try:
        parsed = check_envelope(peer, body, feed_after)
    except BatchRefused as exc:
        batch_refused_record(
            actor=actor,
            claimed_hub=peer.hub_id,
            batch_id=readable_batch_id(body),
            code=exc.code,
            message=exc.message,
            request_evidence=evidence() if evidence is not None else None,
        )
        batch_refused_counted(peer=peer.hub_id, via=via, code=exc.code)
        raise
    now = timezone.now()
    batch = ReceivedBatch(
        peer=peer,
        actor=actor,
        via=via,
        parsed=parsed,
        now=now,
        hubs=known_hubs(parsed, peer),
        results=[None] * (len(parsed.items) + len(parsed.problems)),
    )
    for problem in parsed.problems:
        batch.results[problem.index] = ReceivedItemResult(
            problem.index,
            problem.digest,
            REJECTED,
            "invalid",
            f"{problem.field}: {problem.message}",
        )
    check_items(batch)
    checked = list(batch.results)

    def forget() -> None:
        # A concurrent batch (from another peer) stored the same key, receipt or contribution
        # first; this one rolled back entirely: storage runs again from the checked results.
        batch.results = list(checked)

    atomic_retrying_lost_races(lambda: batch_store(batch), reset=forget, what="federation batch")
    assert all(result is not None for result in batch.results)
    received_counted(peer=peer.hub_id, via=via, results=batch.results)
    return BatchResult(parsed.batch_id, batch.results, parsed.feed)  # type: ignore[arg-type]
