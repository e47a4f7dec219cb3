"""Celery tasks for the transparency log: thin wrappers around the sequencer service."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def sequence_audit_log() -> int:
    """Sequence pending audit events into the Merkle tree and sign a checkpoint."""
    from federation.transparency.sequencer import sequence_pending

    return sequence_pending()


def request_sequencing() -> None:
    """A best-effort nudge after a commit; the periodic beat task is the guarantee."""
    try:
        sequence_audit_log.apply_async(retry=False)
    except Exception:  # the broker being down must never fail the request that audited
        logger.warning("could not enqueue audit log sequencing; the periodic run will pick it up")
