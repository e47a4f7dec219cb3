"""The audit log sequencer's CPU per event, in process (issue 28): ``sequence_pending`` over
``EVENTS`` committed events written as a received batch writes them (half
``contribution.accepted`` by ``audit_record_alike``, half ``entry.vetted`` by
``audit_record_for_ids``, a peer hub the actor), several runs, each on new events: sequenced
as one backlog, and after each received batch.

Printed per run: this process's CPU per event (``time.process_time``) and its PostgreSQL
backend's (``/proc/<pid>/schedstat``, same machine), for the sequencing and, apart, for writing
the events (their ``COPY``/``INSERT`` and commit), which a change to the table's storage moves
too. ``CONCORDAT_BENCH_PROFILE=<dir>`` writes a cProfile of each sequencing run.
"""

import cProfile
import os
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from django.db import transaction

from federation.transparency import audit
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import audit_record_alike, audit_record_for_ids
from federation.transparency.models import AuditEvent
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.backend_cpu import backend_seconds
from tests.support.parties import random_hex

pytestmark = [pytest.mark.bench]

EVENTS = int(os.environ.get("CONCORDAT_BENCH_EVENTS", "20000"))
RUNS = int(os.environ.get("CONCORDAT_BENCH_RUNS", "4"))
CHUNK = 500  # a received batch's size


def _write_events(count: int, entry_base: int) -> None:
    """``count`` events, a received batch's ``CHUNK`` items per transaction: each item one
    ``contribution.accepted`` and one ``entry.vetted``."""
    peer = Actor.peer("alpha.hub", "Alpha")
    for start in range(0, count // 2, CHUNK):
        entry_ids = range(entry_base + start, entry_base + min(start + CHUNK, count // 2))
        now = datetime.now(UTC)
        with transaction.atomic():
            audit_record_alike(
                action=Action.CONTRIBUTION_ACCEPTED,
                actor=peer,
                organisation="initech@alpha.hub",
                object_type=ObjectType.CONTRIBUTION,
                objects=[
                    (
                        uuid := str(uuid4()),
                        {
                            Key.UUID: uuid,
                            Key.KEY_ID: "k_" + random_hex(16),
                            Key.CONTENT_HASH: random_hex(64),
                            Key.SIGNATURE: random_hex(43) + "=",
                            Key.ACTION: "add",
                            Key.SIGNAL_TYPE: "pdq",
                            Key.VALUE: random_hex(64),
                            Key.LABELS: ["attack-footage"],
                            Key.ENTRY_ID: entry_id,
                        },
                    )
                    for entry_id in entry_ids
                ],
                occurred_at=now,
            )
            audit_record_for_ids(
                action=Action.ENTRY_VETTED,
                actor=peer,
                organisation="",
                object_type=ObjectType.ENTRY,
                object_ids=list(entry_ids),
                data={
                    Key.FROM: "pending",
                    Key.TO: "vetted",
                    Key.REASON: "vetted by trusted peer alpha.hub",
                    Key.POLICY: {"rule": "trusted_peer", "peer": "alpha.hub"},
                },
                occurred_at=now,
            )


def _report(name: str, figures: list[float]) -> None:
    print(f"  {name}: " + ", ".join(f"{figure:.1f}" for figure in figures))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sequenced_every", [EVENTS, 2 * CHUNK], ids=["backlog", "per-batch"])
def test_sequencer_cpu_per_event(monkeypatch, sequenced_every):
    """``backlog``: ``EVENTS`` written, then sequenced (batches of TRANSPARENCY_SEQUENCE_BATCH);
    ``per-batch``: sequenced after each received batch's events (``CHUNK`` items, two events
    each), as a receiving hub's worker does when it keeps up, so each run's fixed work counts."""
    monkeypatch.setattr(audit, "_schedule_sequencing", lambda: None)  # no broker: sequenced here
    sequence_pending()  # the empty log's checkpoint
    directory = os.environ.get("CONCORDAT_BENCH_PROFILE")
    write_python, write_database, python, database, loads = [], [], [], [], []
    for run in range(RUNS):
        spent = [0.0, 0.0, 0.0, 0.0]
        profile = cProfile.Profile(time.process_time) if directory else None
        for start in range(0, EVENTS, sequenced_every):
            backend, started = backend_seconds(), time.process_time()
            _write_events(sequenced_every, entry_base=run * EVENTS + start)
            spent[0] += time.process_time() - started
            spent[1] += backend_seconds() - backend
            backend, started = backend_seconds(), time.process_time()
            if profile:
                profile.enable()
            sequenced = sequence_pending()
            if profile:
                profile.disable()
            spent[2] += time.process_time() - started
            spent[3] += backend_seconds() - backend
            assert sequenced == sequenced_every
        if profile:
            profile.dump_stats(os.path.join(directory, f"sequencer-{sequenced_every}-{run}.prof"))
        for figures, seconds in zip(
            (write_python, write_database, python, database), spent, strict=True
        ):
            figures.append(seconds / EVENTS * 1e6)
        loads.append(os.getloadavg()[0])
    assert not AuditEvent.objects.filter(leaf_index__isnull=True).exists()
    print(
        f"\nSequencer CPU per event, µs, {RUNS} runs of {EVENTS:,} events each, "
        f"sequenced every {sequenced_every:,}"
    )
    _report("sequencing, Python", python)
    _report("sequencing, its PostgreSQL backend", database)
    _report("writing the events, Python", write_python)
    _report("writing the events, its PostgreSQL backend", write_database)
    _report("load average (1 min)", loads)
