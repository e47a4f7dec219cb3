"""Celery tasks by name: every task's name and queue, and the one way services enqueue work.

Services never import a task module: they call ``nudge`` (after a commit, best effort) or
``enqueue`` (a task fanning out) with a ``TaskName``, and Celery finds the task by that name. So
the task modules import the services and nothing imports the task modules but the worker
(``settings.celery`` discovers them), which keeps the import graph free of circles.

The names are the dotted paths Celery gave the tasks when it named them after their modules:
beat's schedule and messages already queued carry them, so they stay as they are even if a task
moves. Each task runs on the hub's queue (``CELERY_TASK_DEFAULT_QUEUE``, one per hub on a shared
broker) except the incident lane's outbox drain, which has ``<queue>.incident`` to itself, so
that incident items never wait behind a backlog of ordinary ones (docs/federation.md). Workers
consume both queues. ``task_routes`` is the routing table settings installs.

This module is read by settings, before Django is set up: it imports nothing of the hub.
"""

import logging
import os
import threading
import time

from celery import current_app

logger = logging.getLogger(__name__)


class TaskName:
    """The name of every Celery task of the hub."""

    SEQUENCE_AUDIT_LOG = "federation.transparency.tasks.sequence_audit_log"
    COLLECT_COSIGNATURES = "federation.transparency.tasks.collect_cosignatures"
    COSIGN_WITH_WITNESS = "federation.transparency.tasks.cosign_with_witness"
    SYNC_SEQUENCE_CHANGES = "federation.sync.tasks.sync_sequence_changes"
    SYNC_COMPACT_CHANGES = "federation.sync.tasks.sync_compact_changes"
    DRAIN_OUTBOX = "federation.propagation.tasks.drain_outbox"
    DRAIN_OUTBOX_INCIDENT = "federation.propagation.tasks.drain_outbox_incident"
    DRAIN_OUTBOX_SWEEP = "federation.propagation.tasks.drain_outbox_sweep"
    FEDERATION_PULL = "federation.propagation.pull.federation_pull"
    FEDERATION_PULL_ALL = "federation.propagation.pull.federation_pull_all"
    LOOKUP_TABLE_REFRESH = "federation.lookup.tasks.lookup_table_refresh_task"
    LOOKUP_USAGE_AUDIT = "federation.lookup.tasks.lookup_usage_audit_task"
    LIVE_EXPIRE_IDLE_SESSIONS = "federation.live.expire_idle_sessions"


INCIDENT_SUFFIX = ".incident"
# Each task's queue, as a suffix of the hub's queue: "" is the hub's queue itself.
_QUEUE_SUFFIXES = {
    TaskName.SEQUENCE_AUDIT_LOG: "",
    TaskName.COLLECT_COSIGNATURES: "",
    TaskName.COSIGN_WITH_WITNESS: "",
    TaskName.SYNC_SEQUENCE_CHANGES: "",
    TaskName.SYNC_COMPACT_CHANGES: "",
    TaskName.DRAIN_OUTBOX: "",
    TaskName.DRAIN_OUTBOX_INCIDENT: INCIDENT_SUFFIX,
    TaskName.DRAIN_OUTBOX_SWEEP: "",
    TaskName.FEDERATION_PULL: "",
    TaskName.FEDERATION_PULL_ALL: "",
    TaskName.LOOKUP_TABLE_REFRESH: "",
    TaskName.LOOKUP_USAGE_AUDIT: "",
    TaskName.LIVE_EXPIRE_IDLE_SESSIONS: "",
}
TASK_NAMES = frozenset(_QUEUE_SUFFIXES)


def task_routes(queue: str) -> dict[str, dict[str, str]]:
    """``CELERY_TASK_ROUTES`` for a hub whose queue is ``queue``: every task, by name."""
    return {name: {"queue": queue + suffix} for name, suffix in _QUEUE_SUFFIXES.items()}


def enqueue(name: str, *args, **kwargs) -> None:
    """Send the task ``name`` with these arguments (ids, never objects). A broker error is
    raised: for a task fanning out work, which beat runs again."""
    _signature(name, args, kwargs).apply_async()


def nudge(name: str, *args, **kwargs) -> None:
    """Ask for the task ``name`` after a commit, best effort: the broker being down must never
    fail the change that asked, and the periodic run (beat) is the guarantee."""
    try:
        _signature(name, args, kwargs).apply_async(retry=False)
    except Exception:
        logger.warning("could not enqueue %s; the periodic run will pick it up", name)


def nudge_soon(name: str) -> None:
    """``nudge(name)`` (a task without arguments) from a sender thread of this process, so that
    the caller does not wait for the broker (a Celery send costs about 1 ms of CPU and 2 ms in
    all on a loaded machine: more than a single-signal match request's own work). Asks made
    while a send is under way are answered by one more send after it: every ask is followed by
    a send that starts after it. The sender waits ``NUDGE_SOON_LINGER`` seconds after an ask
    before it sends, so that asks made meanwhile share the send: a process answering requests
    back to back sends at most one nudge per linger and send, not one per request (each send
    costs that CPU on the process, whichever thread makes it). Best effort like ``nudge``: a
    process that exits with an ask pending leaves it to the periodic run."""
    with _soon_lock:
        sender = _soon_senders.get(name)
        if sender is None or sender.pid != os.getpid() or not sender.is_alive():
            sender = _soon_senders[name] = _SoonSender(name)  # after a fork: a thread of its own
            sender.start()
    sender.wanted.set()


class _SoonSender(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=f"nudge-soon:{name}", daemon=True)
        self.task = name
        self.pid = os.getpid()
        self.wanted = threading.Event()

    def run(self) -> None:
        while True:
            self.wanted.wait()
            time.sleep(NUDGE_SOON_LINGER)
            self.wanted.clear()  # an ask from now on gets the next send
            nudge(self.task)


# How long a sender waits after an ask before sending (the task runs that much later at most).
NUDGE_SOON_LINGER = 0.02
_soon_lock = threading.Lock()
_soon_senders: dict[str, _SoonSender] = {}


def prepare_to_send() -> None:
    """Do at a process's start what its first send would otherwise do in the middle of a
    request: finalize the Celery app, import the broker's transport and the result backend, and
    build the router and the task sender (about 85 ms of CPU, measured in a web process: its first
    nudge 86 ms, then 9 ms, the connection alone). No connection is opened, so a broker that is
    down delays nothing here: the first send connects, as before."""
    app = current_app._get_current_object()
    app.finalize(auto=True)
    app.amqp.router  # noqa: B018 (each read for its side effect: built and cached)
    app.amqp.send_task_message  # noqa: B018
    app.backend  # noqa: B018
    with app.connection_for_write() as connection:
        connection.transport  # noqa: B018 (the transport's module imported, nothing connected)


def _signature(name: str, args: tuple, kwargs: dict):
    """By name: the registered task where this process has imported it (so eager mode runs it
    here), else a message Celery routes with ``task_routes`` like any other."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}")
    return current_app.signature(name, args=args, kwargs=kwargs)
