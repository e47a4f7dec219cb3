"""Celery tasks that drain the federation outbox: thin wrappers around
``federation.propagation.delivery.outbox_drain``, taking ids, never objects.

The normal lane runs on the hub's queue; the incident lane on its own, ``<queue>.incident``
(``federation.enqueue``), so that incident items are never held behind a backlog of ordinary
ones. Workers must consume both queues. Commits nudge the drain (``delivery.request_drain``,
on commit); the beat sweep is the safety net.
"""

from celery import shared_task
from django.utils import timezone

from federation.enqueue import TaskName
from federation.propagation.delivery import outbox_drain, request_drain
from federation.propagation.models import OutboxItem


def _drain(peer_id: int, lane: str) -> int:
    result = outbox_drain(peer_id=peer_id, lane=lane)
    if result.more:
        request_drain(peer_id=peer_id, lane=lane)
    return result.delivered


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
