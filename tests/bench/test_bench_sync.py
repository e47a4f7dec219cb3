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
"""

import json
import os
import statistics
import time
import urllib.request
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.signing import format_timestamp, sign_contribution
from tests.bench.seeding import seed_vetted_pdq_entries
from tests.integration.harness import running_hub, wait_for

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
