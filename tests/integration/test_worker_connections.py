"""A Celery worker keeps its PostgreSQL sessions across tasks (settings.celery): before, Celery's
Django fixup closed every connection around each task, so each drain and each sequencing task
started a new PostgreSQL backend (measured on the federation bench: about 9 CPU-seconds of
backend start-ups in a 20,000-entry run)."""

import time

import psycopg

from tests.support.federation_harness import running_federation, wait_for

TASKS = 12


def test_a_worker_runs_many_tasks_on_the_sessions_it_opened_once():
    with running_federation("a") as fed:
        (a,) = fed.hubs
        with psycopg.connect(a.database_url, autocommit=True) as watcher:

            def sessions() -> int:
                return watcher.execute(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                ).fetchone()[0]

            def unsequenced() -> int:
                return watcher.execute(
                    "SELECT count(*) FROM federation_auditevent WHERE leaf_index IS NULL"
                ).fetchone()[0]

            # The worker's processes have connected once beat's first tasks ran.
            wait_for(lambda: unsequenced() == 0, timeout=30, what="the first sequencing")
            time.sleep(3)
            before = sessions()
            # One process (one session) commits TASKS audited changes, each nudging the
            # sequencer after its commit: the worker runs at least one task per nudge, and beat
            # adds its sweeps and sequencing runs meanwhile.
            a.manage_many(
                [
                    ["create_staff", "--user", f"auditor-{n}", "--role", "auditor"]
                    for n in range(TASKS)
                ]
            )
            wait_for(lambda: unsequenced() == 0, timeout=30, what="the nudged sequencing")
            time.sleep(4)  # two more beat rounds (every 2 s here)
            opened = sessions() - before
        # The management command's own session, and at most one per worker process that had
        # not yet needed one (two prefork children and the incident worker's one).
        assert opened <= 4, opened
