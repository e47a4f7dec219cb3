"""Federation's Python per delivered entry, in process (issue 28): the CPU the sender's drain and
the receiver's push endpoint spend per item, each alone, without PostgreSQL's (another process)
and without the other side's. ``CONCORDAT_BENCH_PROFILE=<dir>`` writes a cProfile of each.

- sender: ``outbox_drain`` of ``ROWS`` rows of a trusted member's vetted adds to a peer whose
  answers come from a small server in its own process (every item accepted), the rows put back
  in the queue between runs; also the CPU of its PostgreSQL backend per row (``/proc``, same
  machine; the runs share the test's transaction, so no commit is counted), and with
  ``CONCORDAT_BENCH_STATEMENTS=1`` per statement (from the second run on, the rows put back are
  new row versions: the first run is the one like a real drain's);
- feed: ``GET /api/v1/federation/feed`` (the test client) read from 0 to its end in pages of
  500 changes by a peer that is owed ``ROWS`` vetted adds, asking for roots or not: the CPU the
  serving hub spends per item (its Python, and its PostgreSQL backend's);
- receiver: ``POST /api/v1/federation/batches`` (the test client: Django's middleware, DRF, the
  parser, checks and storage) of batches of 500 contribution items from a trusted peer, each
  item as a sender builds it (the member's contribution, its key section, the origin's
  attestation, a path of one hub, ``sent_to`` the third hub); also its PostgreSQL backend's
  CPU per item, and with ``CONCORDAT_BENCH_STATEMENTS=1`` per statement.

Each runs twice: with the attestations signed alone, and under roots (docs/federation.md,
"Attestations under one root"; the sender's peer says it takes them from the first answer on).
"""

import contextlib
import cProfile
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.db import connection

from federation.db import bulk_insert
from federation.propagation import attestation_roots
from federation.propagation.attestation_roots import LEAVES_PER_ROOT
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import OutboxItem, PeerLink
from federation.receiving.pull import FEED_PATH
from federation.sync.sequencer import sync_sequence_pending
from members.models import Role
from tests.support.backend_cpu import backend_pid, backend_seconds
from tests.support.federation import RemoteHub, contribution_item
from tests.support.parties import make_member, make_organisation, random_hex
from tests.support.sending import feed_reader, make_peer

pytestmark = [pytest.mark.bench]

ROWS = int(os.environ.get("CONCORDAT_BENCH_ROWS", "2000"))
RUNS = int(os.environ.get("CONCORDAT_BENCH_RUNS", "3"))
ANSWER_SERVER = Path(__file__).with_name("answer_server.py")


def _measured(name: str, run: int, work) -> float:
    """CPU seconds of this process spent by ``work()`` (profiled when asked)."""
    directory = os.environ.get("CONCORDAT_BENCH_PROFILE")
    profile = cProfile.Profile(time.process_time) if directory else None
    start = time.process_time()
    if profile:
        profile.enable()
    work()
    if profile:
        profile.disable()
    spent = time.process_time() - start
    if profile:
        profile.dump_stats(os.path.join(directory, f"{name}-{run}.prof"))
    return spent


def _report(name: str, spent: list[float], count: int, database: list[float] = ()) -> None:
    load = os.getloadavg()[0]
    per_item = ", ".join(f"{s / count * 1e6:.0f}" for s in spent)
    backend = ", ".join(f"{s / count * 1e6:.0f}" for s in database)
    print(
        f"\n{name}: CPU µs per item over {count} items, runs: {per_item} (load {load:.2f})"
        + (f"; its PostgreSQL backend's: {backend}" if backend else "")
    )


def _vetted_adds(count: int) -> None:
    """``count`` adds by a trusted member (auto-vetted: owed to every linked peer)."""
    alice = make_member("alice", make_organisation("acme", trusted=True), Role.SUBMITTER)
    items = [alice.signed() for _ in range(count)]
    for start in range(0, count, 1000):
        response = alice.client.post(
            "/api/v1/contributions/bulk/", {"items": items[start : start + 1000]}, format="json"
        )
        assert response.status_code == 200, response.content[:300]


@pytest.fixture
def answering_peer(db):
    server = subprocess.Popen(
        [sys.executable, str(ANSWER_SERVER)], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        yield make_peer("bravo.hub", url=f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait()


@pytest.mark.parametrize("roots", [False, True], ids=["signed-alone", "under-a-root"])
def test_sender_cpu_per_item(answering_peer, settings, monkeypatch, roots):
    statements = _StatementCPU(monkeypatch)
    settings.FEDERATION_DRAIN_ROUNDS = 1_000
    # The peer's answers say it takes attestations under a root: with ``roots``, as from the
    # first batch on (a worker learns it from its first answer), otherwise not at all.
    settings.FEDERATION_ATTESTATION_ROOTS = roots
    PeerLink.objects.filter(peer=answering_peer).update(takes_attestation_roots=True)
    make_peer("charlie.hub")  # each item names it in sent_to, as in the triangle
    _vetted_adds(ROWS)
    owed = OutboxItem.objects.filter(peer=answering_peer)
    assert owed.count() == ROWS
    spent, database = [], []
    for run in range(RUNS):
        owed.update(state="pending", claimed_until=None, attempts=0, digest="")
        result = None

        def drain():
            nonlocal result
            result = outbox_drain(peer_id=answering_peer.pk, lane="normal")

        before = backend_seconds()
        with statements.watching():
            spent.append(_measured("sender", run, drain))
        database.append(backend_seconds() - before)
        if statements.enabled:
            print(f"\nsender drain, run {run}, its PostgreSQL backend by statement:")
            statements.report(ROWS)
        assert result.delivered == ROWS
    _report(f"sender drain, attestations {_FORM[roots]}", spent, ROWS, database)


class _StatementCPU:
    """With ``CONCORDAT_BENCH_STATEMENTS`` set: the backend's CPU per statement (its first 90
    characters; a COPY by table), from ``/proc/<pid>/schedstat`` around each one."""

    def __init__(self, monkeypatch) -> None:
        self.spent: Counter[str] = Counter()
        self.enabled = bool(os.environ.get("CONCORDAT_BENCH_STATEMENTS"))
        if not self.enabled:
            return
        self.pid = backend_pid()
        copy = bulk_insert._copy

        def timed_copy(cursor, connection, model, table, *args, **kwargs):
            with self.timed(f"COPY {model._meta.db_table}"):
                return copy(cursor, connection, model, table, *args, **kwargs)

        monkeypatch.setattr(bulk_insert, "_copy", timed_copy)

    @contextlib.contextmanager
    def timed(self, name: str):
        start = backend_seconds(self.pid)
        try:
            yield
        finally:
            self.spent[name] += backend_seconds(self.pid) - start

    def execute(self, execute, sql, params, many, context):
        with self.timed(" ".join(sql.split())[:90]):
            return execute(sql, params, many, context)

    def watching(self):
        return (
            connection.execute_wrapper(self.execute) if self.enabled else contextlib.nullcontext()
        )

    def report(self, count: int) -> None:
        for name, seconds in self.spent.most_common(15):
            print(f"  {seconds / count * 1e6:6.2f} µs per item  {name}")
        self.spent.clear()


_FORM = {False: "signed alone", True: f"under a root per {LEAVES_PER_ROOT}"}


@pytest.mark.parametrize("roots", [False, True], ids=["signed-alone", "under-a-root"])
def test_receiver_cpu_per_item(db, monkeypatch, roots):
    statements = _StatementCPU(monkeypatch)
    alpha = RemoteHub("alpha.hub")
    make_peer("charlie.hub")
    member = alpha.member("initech")
    key = member.key_section()
    batches = []
    for _run in range(RUNS):
        batches.append([])
        for start in range(0, ROWS, 500):
            items = []
            for _ in range(min(500, ROWS - start)):
                document = member.contribution(signal={"type": "pdq", "value": random_hex(64)})
                item = contribution_item(member, document, key=key)
                item["sent_to"] = ["charlie.hub"]
                items.append(item)
            # As a sender puts them: a root for each run of LEAVES_PER_ROOT attestations.
            for first in range(0, len(items) if roots else 0, LEAVES_PER_ROOT):
                run_of = items[first : first + LEAVES_PER_ROOT]
                pairs = alpha.under_root([item["attestations"][0] for item in run_of])
                for item, pair in zip(run_of, pairs, strict=True):
                    item["attestations"] = [pair]
            batches[-1].append(orjson.dumps(alpha.batch(items, to=settings.HUB_ID)))
    spent, database = [], []
    for run, bodies in enumerate(batches):

        def push(bodies=bodies):
            for body in bodies:
                response = alpha.client.post(
                    "/api/v1/federation/batches", body, content_type="application/json"
                )
                assert response.status_code == 200, response.content[:300]
                assert response.json()["rejected"] == 0

        backend = backend_seconds()
        with statements.watching():
            spent.append(_measured("receiver", run, push))
        database.append(backend_seconds() - backend)
        if statements.enabled:
            print(f"\nreceiver push, run {run}, its PostgreSQL backend by statement:")
            statements.report(ROWS)
    _report(f"receiver push, attestations {_FORM[roots]}", spent, ROWS)
    _report("receiver push, its PostgreSQL backend", database, ROWS)


@pytest.mark.parametrize("roots", [False, True], ids=["signed-alone", "under-a-root"])
def test_feed_cpu_per_item(db, roots):
    _bravo, client = feed_reader("bravo.hub")
    _vetted_adds(ROWS)
    sync_sequence_pending()
    headers = {"Concordat-Attestation-Roots": "1"} if roots else {}
    spent, database = [], []
    for run in range(RUNS):
        served = []

        def read(served=served):
            after, more = 0, True
            while more:
                response = client.get(FEED_PATH, {"after": after, "limit": 500}, headers=headers)
                assert response.status_code == 200, response.content[:300]
                page = orjson.loads(response.content)["batch"]
                served.extend(page["items"])
                after, more = page["feed"]["next"], page["feed"]["more"]

        before = backend_seconds()
        spent.append(_measured("feed", run, read))
        database.append(backend_seconds() - before)
        assert len(served) == ROWS
        assert all(
            (item["attestations"][-1].keys() == attestation_roots.ROOTED_FIELDS) == roots
            for item in served
        )
    _report(f"feed pages, attestations {_FORM[roots]}", spent, ROWS, database)
