"""Celery tasks that drain the federation outbox: thin wrappers around
``federation.propagation.delivery.outbox_drain``, taking ids, never objects.

The normal lane runs on the hub's queue; the incident lane on its own, ``<queue>.incident``
(``federation.enqueue``), so that incident items are never held behind a backlog of ordinary
ones. Workers must consume both queues. Commits nudge the drain (``delivery.request_drain``,
on commit); the beat sweep is the safety net.

A task sends a round and, while rows are still due, another at once (claimed and built while the
one before is out: ``delivery._pipelined``), claiming rounds for up to
``FEDERATION_DRAIN_TASK_SECONDS``; then it hands the lane over to a fresh task (behind whatever
else is queued), so that one busy peer does not keep a worker slot from the others.
"""

import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from federation.enqueue import TaskName
from federation.propagation.delivery import outbox_drain, request_drain
from federation.propagation.models import OutboxItem


def _drain(peer_id: int, lane: str) -> int:
    started = time.monotonic()
    delivered = 0
    while True:
        left = settings.FEDERATION_DRAIN_TASK_SECONDS - (time.monotonic() - started)
        # Rounds one after another while rows are due (the next claimed and built while one is
        # out), not after a trip through the broker and the queue, until the task has had its
        # time (a first round is always sent).
        result = outbox_drain(peer_id=peer_id, lane=lane, seconds=max(left, 0.0))
        delivered += result.delivered
        if not result.more:
            return delivered
        # Rows left: they came as the drain ended (it goes on), or the task has had its time.
        if time.monotonic() - started >= settings.FEDERATION_DRAIN_TASK_SECONDS:
            request_drain(peer_id=peer_id, lane=lane)
            return delivered


@shared_task(name=TaskName.DRAIN_OUTBOX, acks_late=True, ignore_result=True)
def drain_outbox(peer_id: int) -> int:
    """Send what is due to one peer in the normal lane."""
    return _drain(peer_id, OutboxItem.Lane.NORMAL)


@shared_task(name=TaskName.DRAIN_OUTBOX_INCIDENT, acks_late=True, ignore_result=True)
def drain_outbox_incident(peer_id: int) -> int:
    """Send what is due to one peer in the incident lane (its own queue)."""
    return _drain(peer_id, OutboxItem.Lane.INCIDENT)


@shared_task(name=TaskName.DRAIN_OUTBOX_SWEEP, acks_late=True, ignore_result=True)
def drain_outbox_sweep() -> int:
    """Start a drain for every (peer, lane) with a row due: catches a lost nudge, and rows whose
    backoff or lease has ended."""
    now = timezone.now()
    pairs = (
        OutboxItem.objects.filter(
            state=OutboxItem.State.PENDING,
            next_attempt_at__lte=now,
            peer__state="active",
        )
        .exclude(peer__url="")
        .exclude(peer__outbound_token="")
        .order_by()
        .values_list("peer_id", "lane")
        .distinct()
    )
    count = 0
    for peer_id, lane in pairs:
        request_drain(peer_id=peer_id, lane=lane)
        count += 1
    return count
