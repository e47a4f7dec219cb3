"""The Celery application. Workers run ``celery -A settings.celery worker``."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
# Django's system checks run where they can stop a deployment (`manage.py check --deploy`,
# `migrate`), not at every worker's start: there they imported the URL patterns, and with them
# every API module, which no task needs (about 0.18 s of CPU per start; docs/operations.md).
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("concordat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    [
        "federation.transparency",
        "federation.sync",
        "federation.propagation",
        "federation.lookup",
        "federation.live",
    ]
)
# Federation: the pull (anti-entropy) tasks live beside the receiving service.
app.autodiscover_tasks(["federation.receiving"], related_name="pull")


@task_prerun.connect
def _before_task(sender=None, **_kwargs) -> None:
    if not _is_eager(sender):
        _close_old_connections()


@task_postrun.connect
def _after_task(sender=None, **_kwargs) -> None:
    if not _is_eager(sender):
        _release_session_locks()
        _close_old_connections()


def _is_eager(task) -> bool:
    """An eager task runs inside its caller's connection (and a test's transaction): left alone."""
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


def _close_old_connections() -> None:
    """What Django does around each request: close the connections that are unusable or older
    than CONN_MAX_AGE and keep the others (``CELERY_DB_REUSE_MAX`` stops Celery closing them)."""
    from django.db import close_old_connections

    close_old_connections()


def _release_session_locks() -> None:
    """A kept connection outlives its task: no session advisory lock may (the drains and pulls
    unlock their own; this is the guarantee if one did not)."""
    from django.db import connection

    if connection.vendor == "postgresql" and connection.connection is not None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_all()")
        except Exception:  # a broken connection: close_old_connections closes it next
            connection.close()
