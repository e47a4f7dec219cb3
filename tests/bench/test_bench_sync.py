"""Member sync benchmark (run with `make bench`), on PostgreSQL behind a live gunicorn:

1. change-stream sequencing: N change rows (one per vetted entry) COPYed in unsequenced, then
   ``manage.py sync_sequence`` to completion, changes/s (target >= 20,000/s);
2. (after 3.) a full pull through the delta API from an empty cursor, pages of 10,000 (target >= 20,000
   entries/s);
3. a full pull through the export (gzip NDJSON, streamed; target >= 100,000 entries/s), run
   first; then the delta pull of 2. CONCORDAT_BENCH_SYNC_DELTA_PULLS times (default 4), with the
   resident and peak memory of the largest gunicorn worker after each;
4. the lag from a committed contribution to its change being readable through the delta API (a
   real Celery worker, nudged after commit; beat is an hour away), p50 and p99.

N is CONCORDAT_BENCH_SYNC_ENTRIES (default 1,000,000). Entries are written with COPY straight into
the hub's database, each with one label and one signed-looking add contribution.

``test_bench_sync_without_statistics`` loads CONCORDAT_BENCH_SYNC_NOSTATS_ENTRIES (default 200,000)
the same way but leaves the tables without statistics (no ANALYZE; autovacuum is off on the
development machine), as after a bulk load, and measures what a follower lives on: an empty
delta page at the head over HTTP (target < 10 ms; after a warm-up, with the same request in one
process by phase beside it), one first-sync page of 10,000, the lag from a
committed contribution to its change being readable over HTTP (target p99 < 1 s) and to its
being applied by a match index's follower thread in another process (polling every 250 ms).
"""

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import format_timestamp, sign_contribution
from tests.support.bench_seeding import seed_vetted_pdq_entries
from tests.support.harness import ROOT, running_hub, wait_for

pytestmark = pytest.mark.bench

ENTRIES = int(os.environ.get("CONCORDAT_BENCH_SYNC_ENTRIES", 1_000_000))
LAG_SAMPLES = 100
DELTA_PULLS = int(os.environ.get("CONCORDAT_BENCH_SYNC_DELTA_PULLS", 4))


def _get(hub, path: str, token: str):
    request = urllib.request.Request(hub.url + path)
    request.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(request, timeout=300)


def _rss_kib(pid: int, field: str = "VmHWM") -> dict[int, int]:
    """A /proc status field of the gunicorn master's worker processes, KiB: VmHWM (peak resident
    set) or VmRSS (resident now)."""
    sizes = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            status = Path(f"/proc/{child}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith(field + ":"))
            sizes[int(child)] = int(line.split()[1])
    return sizes


def _mib(sizes: dict[int, int]) -> str:
    """The largest worker's figure, MiB."""
    return f"{max(sizes.values()) / 1024:.0f}"


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _pull_everything(hub, token: str) -> tuple[int, int, str]:
    """Every change from an empty cursor, in pages of 10,000: (entries, pages, last cursor)."""
    pulled, cursor, pages = 0, None, 0
    while True:
        path = "/api/v1/sync/changes?limit=10000" + (f"&after={cursor}" if cursor else "")
        with _get(hub, path, token) as response:
            page = orjson.loads(response.read())
        pulled += len(page["changes"])
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            return pulled, pages, cursor


def test_bench_sync():
    key = Ed25519PrivateKey.generate()
    env = {"CONCORDAT_SYNC_SEQUENCE_INTERVAL_SECONDS": "3600"}
    with running_hub("syncbench", worker=True, extra_env=env) as hub:
        acme = hub.create_member(
            org="acme", user="alice", role="submitter", trusted=True,
            signing_key=key, token=True,
        )  # fmt: skip
        token = hub.create_member(org="globex", user="gus", role="reviewer", token=True)["token"]

        started = time.perf_counter()
        seed_vetted_pdq_entries(hub, [f"{i:064x}" for i in range(ENTRIES)], label="attack-footage")
        loaded = time.perf_counter() - started

        sequencing = json.loads(hub.manage("sync_sequence").strip().splitlines()[-1])
        assert sequencing["sequenced"] == ENTRIES

        web = hub.processes[0].pid
        memory = [("before pulls", _rss_kib(web, "VmRSS"), _rss_kib(web))]

        started = time.perf_counter()
        decompressor = zlib.decompressobj(31)
        exported, tail, compressed, last = 0, b"", 0, b""
        with _get(hub, "/api/v1/sync/export", token) as response:
            while chunk := response.read(1 << 20):
                compressed += len(chunk)
                data = tail + decompressor.decompress(chunk)
                lines = data.split(b"\n")
                tail = lines.pop()
                exported += len(lines)
                last = lines[-1] if lines else last
        export_seconds = time.perf_counter() - started
        end = orjson.loads(last)
        assert tail == b""
        assert end["op"] == "end" and end["count"] == ENTRIES
        assert exported == ENTRIES + 1
        memory.append(("after the export", _rss_kib(web, "VmRSS"), _rss_kib(web)))

        # Several full pulls: a leak raises the resident size with each; a per-page high-water
        # mark levels off after the first.
        delta_seconds = []
        for number in range(1, DELTA_PULLS + 1):
            started = time.perf_counter()
            pulled, pages, cursor = _pull_everything(hub, token)
            delta_seconds.append(time.perf_counter() - started)
            assert pulled == ENTRIES
            memory.append((f"after delta pull {number}", _rss_kib(web, "VmRSS"), _rss_kib(web)))

        lags = []
        for _ in range(LAG_SAMPLES):
            document = {
                "kind": "concordat.contribution", "v": 1, "hub": hub.hub_id, "member": "acme",
                "key_id": acme["key_id"], "uuid": str(uuid.uuid4()),
                "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
                "action": "add", "signal": {"type": "md5", "value": uuid.uuid4().hex},
                "labels": ["propaganda"], "scope": "federation",
            }  # fmt: skip
            body = {"contribution": document, "signature": sign_contribution(key, document)}
            status, _ = hub.request(
                "POST", "/api/v1/contributions/", json_body=body, token=token_of(acme)
            )
            assert status == 201
            committed = time.perf_counter()

            def arrived(cursor=cursor):
                status, page = hub.request(
                    "GET", f"/api/v1/sync/changes?after={cursor}", token=token
                )
                return page if status == 200 and page["changes"] else None

            page = wait_for(arrived, timeout=10, interval=0.005, what="the change")
            lags.append(time.perf_counter() - committed)
            cursor = page["next"]

    print()
    print(
        f"Sync benchmark, PostgreSQL, {ENTRIES:,} vetted entries (loaded with COPY in {loaded:.1f} s)"
    )
    print(
        f"  sequencing: {sequencing['sequenced']:,} changes in {sequencing['seconds']:.2f} s: "
        f"{sequencing['sequenced'] / sequencing['seconds']:,.0f} changes/s"
    )
    print(
        f"  delta API (live gunicorn, pages of 10,000): {pulled:,} entries in {pages} pages, "
        f"{DELTA_PULLS} full pulls, median {statistics.median(delta_seconds):.1f} s: "
        f"{pulled / statistics.median(delta_seconds):,.0f} entries/s"
    )
    print(
        f"  export (gzip NDJSON, streamed): {ENTRIES:,} entries, {compressed / 1e6:.1f} MB gzip, "
        f"{export_seconds:.1f} s: {ENTRIES / export_seconds:,.0f} entries/s"
    )
    print("  largest gunicorn worker, resident now (VmRSS) / peak (VmHWM), MiB:")
    for moment, rss, peak in memory:
        print(f"    {moment}: {_mib(rss)} / {_mib(peak)}")
    print(
        f"  commit -> readable lag over HTTP ({LAG_SAMPLES} samples): "
        f"p50 {statistics.median(lags) * 1000:.0f} ms, p99 {_percentile(lags, 0.99) * 1000:.0f} ms"
    )


def token_of(member: dict) -> str:
    return member["token"]


NOSTATS_ENTRIES = int(os.environ.get("CONCORDAT_BENCH_SYNC_NOSTATS_ENTRIES", 200_000))
NOSTATS_LAG_SAMPLES = int(os.environ.get("CONCORDAT_BENCH_SYNC_NOSTATS_LAG_SAMPLES", 50))
EMPTY_PAGES = int(os.environ.get("CONCORDAT_BENCH_SYNC_NOSTATS_EMPTY_PAGES", 200))

# The empty page's own work, without HTTP and authentication: the selector, in the hub's
# environment, at the head of the stream; prints p50 and p99 in ms.
_EMPTY_SELECTOR = """
import time
from federation.sync.stream import changes_after, stream_state
head = stream_state().last_position
times = []
for _ in range(%d):
    started = time.perf_counter()
    assert changes_after(after=head, limit=1000).items == []
    times.append(time.perf_counter() - started)
times.sort()
print(times[len(times) // 2] * 1000, times[min(len(times) - 1, int(len(times) * 0.99))] * 1000)
"""

# The same empty page through the whole Django stack in one process (middleware, DRF,
# authentication, throttling, the view; no HTTP server), by phase: prints the p50 of the whole
# request, of authentication and of the view's work, in ms, and the statements per request.
_EMPTY_REQUEST_PHASES = """
import time
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from members.authentication import ApiCredentialAuthentication
import federation.sync.api as api
spent = {"authentication": [], "view": []}
def timed(owner, name, phase):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[phase].append(time.perf_counter() - started)
    setattr(owner, name, wrapper)
timed(ApiCredentialAuthentication, "authenticate", "authentication")
timed(api, "changes_after", "view")
client = Client(HTTP_AUTHORIZATION="Bearer %s", HTTP_HOST="127.0.0.1")
path = "/api/v1/sync/changes?after=%s"
for _ in range(20):
    assert client.get(path).status_code == 200
for times in spent.values():
    times.clear()
whole = []
with CaptureQueriesContext(connection) as queries:
    for _ in range(%d):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        whole.append(time.perf_counter() - started)
def median(times):
    return sorted(times)[len(times) // 2] * 1000
print(median(whole), median(spent["authentication"]), median(spent["view"]),
      len(queries.captured_queries) / len(whole))
"""

# A match index in a process of its own (as in a web worker), following the stream; it prints
# each new position with the time it reached it (CLOCK_MONOTONIC: the same clock in every process).
_FOLLOWER = """
import time
import django
django.setup()
from federation.matching.store import MatchStore
store = MatchStore()
store.load()
store.start_following()
last = store.position
print("ready", last, flush=True)
while True:
    if store.position != last:
        last = store.position
        print(last, time.monotonic(), flush=True)
    time.sleep(0.001)
"""


def _contribution(hub, member: dict, key) -> dict:
    document = {
        "kind": "concordat.contribution", "v": 1, "hub": hub.hub_id, "member": "acme",
        "key_id": member["key_id"], "uuid": str(uuid.uuid4()),
        "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
        "action": "add", "signal": {"type": "md5", "value": uuid.uuid4().hex},
        "labels": ["propaganda"], "scope": "federation",
    }  # fmt: skip
    return {"contribution": document, "signature": sign_contribution(key, document)}


def test_bench_sync_without_statistics():
    key = Ed25519PrivateKey.generate()
    env = {"CONCORDAT_SYNC_SEQUENCE_INTERVAL_SECONDS": "3600"}
    with running_hub("syncnostats", worker=True, extra_env=env) as hub:
        acme = hub.create_member(
            org="acme", user="alice", role="submitter", trusted=True,
            signing_key=key, token=True,
        )  # fmt: skip
        token = hub.create_member(org="globex", user="gus", role="reviewer", token=True)["token"]
        values = [f"{i:064x}" for i in range(NOSTATS_ENTRIES)]
        seed_vetted_pdq_entries(hub, values, label="attack-footage", analyze=False)
        sequencing = json.loads(hub.manage("sync_sequence").strip().splitlines()[-1])
        assert sequencing["sequenced"] == NOSTATS_ENTRIES
        with psycopg.connect(hub.database_url) as connection:
            ((analysed,),) = connection.execute(
                "SELECT count(*) FROM pg_stats WHERE tablename LIKE 'federation_%'"
            ).fetchall()
            ((autovacuum,),) = connection.execute("SHOW autovacuum").fetchall()
            # The match follower's poll (and the delta page's first read): the state row.
            ((poll_plan,),) = connection.execute(
                "EXPLAIN (FORMAT JSON) SELECT last_position, compacted_through "
                "FROM federation_syncstate WHERE id = 1"
            ).fetchall()
        assert analysed == 0, "the tables have statistics: this bench needs none"
        head = hub.manage(
            "shell", "-c",
            "from federation.sync.cursors import cursor_for; "
            "from federation.sync.stream import stream_state; "
            "print(cursor_for(stream_state().last_position))",
        ).strip().splitlines()[-1]  # fmt: skip

        # Warm up first: each gunicorn worker opens its database connection on its first
        # request that reads the database (again CONN_MAX_AGE later), and the token's first use
        # records last_used_at; both are timed apart.
        cold = []
        for _ in range(10):
            started = time.perf_counter()
            with _get(hub, f"/api/v1/sync/changes?after={head}", token) as response:
                response.read()
            cold.append(time.perf_counter() - started)
        # For scale on a shared machine: a public page, no authentication, no database.
        baseline = []
        for _ in range(EMPTY_PAGES):
            started = time.perf_counter()
            with _get(hub, "/api/v1/hub/", token) as response:
                response.read()
            baseline.append(time.perf_counter() - started)
        empty = []
        for _ in range(EMPTY_PAGES):
            started = time.perf_counter()
            with _get(hub, f"/api/v1/sync/changes?after={head}", token) as response:
                page = orjson.loads(response.read())
            empty.append(time.perf_counter() - started)
            assert page["changes"] == [] and page["more"] is False

        selector = hub.manage("shell", "-c", _EMPTY_SELECTOR % EMPTY_PAGES)
        selector_p50, selector_p99 = map(float, selector.strip().splitlines()[-1].split())
        phases = hub.manage("shell", "-c", _EMPTY_REQUEST_PHASES % (token, head, EMPTY_PAGES))
        whole_p50, auth_p50, view_p50, statements = map(
            float, phases.strip().splitlines()[-1].split()
        )
        load = os.getloadavg()
        first_pages = []
        for _ in range(3):
            started = time.perf_counter()
            with _get(hub, "/api/v1/sync/changes?limit=10000", token) as response:
                page = orjson.loads(response.read())
            first_pages.append(time.perf_counter() - started)
            assert len(page["changes"]) == 10_000

        follower = subprocess.Popen(
            [sys.executable, "-c", _FOLLOWER], cwd=ROOT, env=hub.env,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        reached: queue.Queue = queue.Queue()

        def read_follower():
            for line in follower.stdout:
                reached.put(line.split())

        threading.Thread(target=read_follower, daemon=True).start()
        try:
            ready, base = reached.get(timeout=600)
            assert ready == "ready" and int(base) == NOSTATS_ENTRIES
            readable, applied = [], []
            for sample in range(1, NOSTATS_LAG_SAMPLES + 1):
                body = _contribution(hub, acme, key)
                status, _ = hub.request(
                    "POST", "/api/v1/contributions/", json_body=body, token=token_of(acme)
                )
                assert status == 201
                committed = time.monotonic()

                def arrived(cursor=head):
                    status, page = hub.request(
                        "GET", f"/api/v1/sync/changes?after={cursor}", token=token
                    )
                    return page if status == 200 and page["changes"] else None

                page = wait_for(arrived, timeout=30, interval=0.005, what="the change")
                readable.append(time.monotonic() - committed)
                head = page["next"]
                while True:  # one change a contribution: the follower reaches base + sample
                    position, at = reached.get(timeout=60)
                    if int(position) >= int(base) + sample:
                        applied.append(float(at) - committed)
                        break
        finally:
            follower.terminate()
            follower.wait(timeout=20)

        # The same reads once the tables have statistics, for comparison.
        with psycopg.connect(hub.database_url, autocommit=True) as connection:
            connection.execute("ANALYZE")
        analysed_pages = []
        for _ in range(3):
            started = time.perf_counter()
            with _get(hub, "/api/v1/sync/changes?limit=10000", token) as response:
                assert len(orjson.loads(response.read())["changes"]) == 10_000
            analysed_pages.append(time.perf_counter() - started)

    print()
    print(
        f"Sync without statistics, PostgreSQL (autovacuum {autovacuum}, no ANALYZE), "
        f"{NOSTATS_ENTRIES:,} vetted entries"
    )
    print(
        f"  empty delta page at the head over HTTP ({EMPTY_PAGES} requests): "
        f"p50 {statistics.median(empty) * 1000:.1f} ms, p99 {_percentile(empty, 0.99) * 1000:.1f} ms"
    )
    print(
        f"    (load average then {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; the first 10 requests, "
        f"each worker opening its database connection: max {max(cold) * 1000:.1f} ms)"
    )
    print(
        f"  the same in one process, the whole Django stack without HTTP ({EMPTY_PAGES} "
        f"requests, p50): {whole_p50:.2f} ms, of which authentication {auth_p50:.2f} ms and "
        f"the view's read {view_p50:.2f} ms; {statements:.1f} statements a request"
    )
    print(
        f"  the same, the selector alone (changes_after, {EMPTY_PAGES} calls): "
        f"p50 {selector_p50:.1f} ms, p99 {selector_p99:.1f} ms"
    )
    print(
        f"  for scale, GET /api/v1/hub/ (public: no authentication, no database; {EMPTY_PAGES} "
        "requests): "
        f"p50 {statistics.median(baseline) * 1000:.1f} ms, "
        f"p99 {_percentile(baseline, 0.99) * 1000:.1f} ms"
    )
    print(
        "  first-sync page of 10,000 over HTTP (3 requests): "
        + ", ".join(f"{seconds * 1000:.0f} ms" for seconds in first_pages)
    )
    print(
        "  the same page after ANALYZE (3 requests): "
        + ", ".join(f"{seconds * 1000:.0f} ms" for seconds in analysed_pages)
    )
    print(
        f"  commit -> readable over HTTP ({NOSTATS_LAG_SAMPLES} samples): "
        f"p50 {statistics.median(readable) * 1000:.0f} ms, "
        f"p99 {_percentile(readable, 0.99) * 1000:.0f} ms"
    )
    poll = poll_plan[0]["Plan"]
    print(
        f"  the follower's poll without statistics, planned as: {poll['Node Type']} "
        f"(estimated cost {poll['Total Cost']}, JIT {'JIT' in poll_plan[0]})"
    )
    print(
        f"  commit -> applied by a match follower ({NOSTATS_LAG_SAMPLES} samples, polls every "
        f"250 ms): p50 {statistics.median(applied) * 1000:.0f} ms, "
        f"p99 {_percentile(applied, 0.99) * 1000:.0f} ms"
    )
