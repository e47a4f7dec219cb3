"""Around each task a worker does what Django does around each request (settings.celery): it
keeps a usable connection within CONN_MAX_AGE, and no session advisory lock outlives the task."""

from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection

from settings.celery import _after_task, _before_task
from tests.support.harness import PG_ADMIN_URL

WORKER_TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))
EAGER_TASK = SimpleNamespace(request=SimpleNamespace(is_eager=True))


@pytest.fixture
def persistent_connection(transactional_db):
    """A connection as a worker's (kept across tasks): settings.test closes at once by default."""
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = None
    connection.ensure_connection()
    yield connection
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = saved


def backend_and_locks() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND pid = pg_backend_pid())"
        )
        return cursor.fetchone()


def test_a_task_keeps_the_connection_and_releases_its_session_locks(persistent_connection):
    backend, _ = backend_and_locks()
    _before_task(sender=WORKER_TASK)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(4242), pg_try_advisory_lock(1, 2)")
    assert backend_and_locks() == (backend, 2)

    _after_task(sender=WORKER_TASK)

    assert backend_and_locks() == (backend, 0)


def test_an_unusable_connection_is_closed_after_the_task(persistent_connection):
    backend, _ = backend_and_locks()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as other:  # the server drops it
        other.execute("SELECT pg_terminate_backend(%s)", [backend])

    _after_task(sender=WORKER_TASK)  # must not raise

    assert backend_and_locks()[0] != backend


def test_an_eager_task_leaves_its_callers_connection_alone(persistent_connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(4242)")
    _after_task(sender=EAGER_TASK)
    assert backend_and_locks()[1] == 1
