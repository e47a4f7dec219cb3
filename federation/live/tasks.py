"""Celery tasks of live-stream sessions: thin wrappers around their services, run by beat."""

from celery import shared_task

from federation.enqueue import TaskName


@shared_task(name=TaskName.LIVE_EXPIRE_IDLE_SESSIONS, acks_late=True, ignore_result=True)
def expire_idle_sessions() -> int:
    """Close the sessions idle past the limit, each with its ``live.closed`` event."""
    # Imported here, not by the module: the live services import numpy and the matching code
    # (86 ms by `python -X importtime` on the bench machine), which every worker would otherwise
    # load at its start for a task that runs once a minute.
    from federation.live.services import live_sessions_expire_idle

    return live_sessions_expire_idle()
