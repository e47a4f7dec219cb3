"""How fast the partner client applies the shared set into its local SQLite copy (docs/client.md,
"How fast"): 200,000 export lines in pages of 10,000, then a delta page of removals given as
its JSON text, as ``concordat sync`` applies them (read by SQLite's JSON functions, one
transaction per page, with its cursor)."""

import json
import time

import pytest
from concordat_client.local import SharedSet

pytestmark = pytest.mark.bench

TOTAL, PAGE = 200_000, 10_000


def change(n: int) -> dict:
    return {
        "op": "upsert",
        "signal": {"type": "pdq", "value": f"{n:064x}"},
        "state": "vetted",
        "labels": ["attack-footage"],
        "contributors": [{"member": "acme", "hub": "hub.example.org"}],
        "incidents": [],
        "quality": 90,
        "first_seen": "2026-12-01T10:00:00.000000Z",
        "last_changed": "2026-12-01T10:05:00.000000Z",
    }


def test_bench_sync_applies_entries_into_sqlite(tmp_path):
    lines = [json.dumps(change(n)).encode() + b"\n" for n in range(TOTAL)]
    pages = [lines[start : start + PAGE] for start in range(0, TOTAL, PAGE)]
    local = SharedSet(tmp_path / "shared-set.sqlite")
    started, cpu = time.perf_counter(), time.process_time()
    for number, page in enumerate(pages):
        assert local.apply_lines(page, cursor=f"cursor-{number}") == PAGE
    upserts, upserts_cpu = time.perf_counter() - started, time.process_time() - cpu
    removals = [
        {"op": "remove", "signal": change(n)["signal"], "reason": "retracted"} for n in range(PAGE)
    ]
    delta_page = json.dumps({"changes": removals, "next": "cursor-last", "more": False})
    started = time.perf_counter()
    assert local.apply_delta_page(delta_page) == (PAGE, False)
    removing = time.perf_counter() - started
    print(
        f"\nclient sync into SQLite: {TOTAL} export lines in {upserts:.2f} s = {TOTAL / upserts:,.0f} "
        f"entries/s ({TOTAL / upserts_cpu:,.0f}/s of this process's CPU time); {PAGE} removals in {removing:.3f} s = {PAGE / removing:,.0f}/s"
    )
    assert local.count() == TOTAL - PAGE and local.cursor() == "cursor-last"
    assert TOTAL / upserts >= 50_000  # wall time, with the machine's load beside it
