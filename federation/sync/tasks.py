"""Celery tasks for the sync stream: thin wrappers around the sequencer and compaction."""

from celery import shared_task

from federation.enqueue import TaskName


@shared_task(name=TaskName.SYNC_SEQUENCE_CHANGES, acks_late=True, ignore_result=True)
def sync_sequence_changes() -> int:
    """Give stream positions to committed changes."""
    from federation.sync.sequencer import sync_sequence_pending

    return sync_sequence_pending()


@shared_task(name=TaskName.SYNC_COMPACT_CHANGES, acks_late=True, ignore_result=True)
def sync_compact_changes() -> int:
    """Drop superseded changes and removals past their retention."""
    from federation.sync.sequencer import sync_changes_compact

    result = sync_changes_compact()
    return result.superseded + result.removals
