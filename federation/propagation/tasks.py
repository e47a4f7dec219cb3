"""Celery tasks that drain the federation outbox: thin wrappers around
``federation.propagation.delivery.outbox_drain``, taking ids, never objects.

The normal lane runs on the hub's queue (``CELERY_TASK_DEFAULT_QUEUE``); the incident lane on
its own, ``<CELERY_TASK_DEFAULT_QUEUE>.incident`` (``CELERY_TASK_ROUTES``), so that incident items
are never held behind a backlog of ordinary ones. Workers must consume both queues. Commits
nudge the drain (``request_drain``, on commit); the beat sweep is the safety net.
"""

import logging

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)

NORMAL = "normal"
INCIDENT = "incident"


def _drain(peer_id: int, lane: str) -> int:
    from federation.propagation.delivery import outbox_drain

    result = outbox_drain(peer_id=peer_id, lane=lane)
    if result.more:
        request_drain(peer_id=peer_id, lane=lane)
    return result.delivered


@shared_task(acks_late=True, ignore_result=True)
def drain_outbox(peer_id: int) -> int:
    """Send what is due to one peer in the normal lane."""
    return _drain(peer_id, NORMAL)


@shared_task(acks_late=True, ignore_result=True)
def drain_outbox_incident(peer_id: int) -> int:
    """Send what is due to one peer in the incident lane (its own queue)."""
    return _drain(peer_id, INCIDENT)


@shared_task(acks_late=True, ignore_result=True)
def drain_outbox_sweep() -> int:
    """Start a drain for every (peer, lane) with a row due: catches a lost nudge, and rows whose
    backoff or lease has ended."""
    from federation.propagation.models import OutboxItem

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


def request_drain(*, peer_id: int, lane: str) -> None:
    """A best-effort nudge (after a commit); the periodic sweep is the guarantee."""
    task = drain_outbox_incident if lane == INCIDENT else drain_outbox
    try:
        task.apply_async(args=[peer_id], retry=False)
    except Exception:  # the broker being down must never fail the change that wrote the rows
        logger.warning("could not enqueue the outbox drain; the periodic sweep will pick it up")


def request_drain_all(*, peer_ids) -> None:
    for peer_id in peer_ids:
        for lane in (NORMAL, INCIDENT):
            request_drain(peer_id=peer_id, lane=lane)
