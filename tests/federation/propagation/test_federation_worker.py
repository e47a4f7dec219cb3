"""A real Celery worker drains the outbox when a commit nudges it: no beat runs, so only the
after-commit nudge (``transaction.on_commit`` in the outbox writer) can deliver in time; the
incident lane's task is routed to its own queue, which the worker consumes too."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from federation.contributions.models import Label
from federation.enqueue import TASK_NAMES, task_routes
from federation.propagation.models import OutboxItem
from federation.vetting.models import Incident
from settings.celery import app
from tests.support.harness import worker_queues
from tests.support.parties import make_member, make_organisation
from tests.support.sending import Receiver, make_peer, vetted_entry

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def queue():
    """This test's own queues on the shared broker, for what this process sends and the worker."""
    name = f"concordat-fedsend-{uuid.uuid4().hex[:8]}"
    saved = (app.conf.task_default_queue, app.conf.task_routes)
    app.conf.task_default_queue = name
    app.conf.task_routes = task_routes(name)
    _forget_routing()
    yield name
    app.conf.task_default_queue, app.conf.task_routes = saved
    _forget_routing()


def _forget_routing() -> None:
    """Celery caches the queues and the routing table it built from the configuration."""
    for cached in ("default_queue", "queues", "router"):
        app.amqp.__dict__.pop(cached, None)
    app.amqp._rtable = None


@pytest.fixture
def worker(queue, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "CONCORDAT_TEST_DB_NAME": connection.settings_dict["NAME"],
        "CONCORDAT_CELERY_QUEUE": queue,
        "CONCORDAT_HUB_KEY_PATH": settings.HUB_KEY_PATH,
        "CONCORDAT_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "settings.celery", "worker", "--pool", "solo",
            "--loglevel", "WARNING", "--queues", worker_queues(queue), "--without-gossip",
            "--without-mingle", "--without-heartbeat",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = log.read_text() if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a real worker process on the test database"
)
@pytest.mark.django_db(transaction=True)
def test_a_commit_nudges_a_real_worker_that_delivers_both_lanes(worker, tmp_path):
    party = make_member("alice", make_organisation("acme"), "submitter")
    # transactional tests run on a flushed database: the taxonomy is made here
    Label.objects.get_or_create(
        slug="attack-footage", defaults={"name": "Attack", "description": "a"}
    )
    incident = Incident.objects.create(name="Event", description="d")
    with Receiver() as receiver:
        make_peer("bravo.hub", url=receiver.url)
        normal = vetted_entry(party)
        urgent = vetted_entry(party, incident=str(incident.pk))

        wait_for(
            lambda: OutboxItem.objects.filter(state="delivered").count() == 2,
            timeout=60,
            what="the worker to deliver both rows",
            log=tmp_path / "worker.log",
        )

    values = {i["contribution"]["signal"]["value"] for i in receiver.items()}
    assert values == {normal.value, urgent.value}
    assert {r.lane for r in OutboxItem.objects.all()} == {"normal", "incident"}


def test_the_incident_drain_is_routed_to_its_own_queue(queue):
    router = app.amqp.router
    incident = router.route({}, "federation.propagation.tasks.drain_outbox_incident")
    normal = router.route({}, "federation.propagation.tasks.drain_outbox")
    assert (incident["queue"].name, normal["queue"].name) == (f"{queue}.incident", queue)
    hub = settings.CELERY_TASK_DEFAULT_QUEUE
    assert task_routes(hub) == settings.CELERY_TASK_ROUTES
    assert {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} == {
        hub,
        f"{hub}.incident",
    }


def test_every_task_is_named_and_routed_and_every_name_is_a_task():
    """The worker finds each task by the name services enqueue (federation/enqueue.py), and
    beat's schedule names only tasks that exist."""
    app.loader.import_default_modules()  # what a worker does at start: discover the task modules
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == set(TASK_NAMES) == set(settings.CELERY_TASK_ROUTES)
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= ours
