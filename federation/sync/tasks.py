"""Celery tasks for the sync stream: thin wrappers around the sequencer and compaction."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def sync_sequence_changes() -> int:
    """Give stream positions to committed changes."""
    from federation.sync.sequencer import sync_sequence_pending

    return sync_sequence_pending()


@shared_task(acks_late=True, ignore_result=True)
def sync_compact_changes() -> int:
    """Drop superseded changes and removals past their retention."""
    from federation.sync.sequencer import sync_changes_compact

    result = sync_changes_compact()
    return result.superseded + result.removals


def request_sync_sequencing() -> None:
    """A best-effort nudge after a commit; the periodic beat task is the guarantee."""
    try:
        sync_sequence_changes.apply_async(retry=False)
    except Exception:  # the broker being down must never fail the request that changed entries
        logger.warning("could not enqueue sync sequencing; the periodic run will pick it up")
