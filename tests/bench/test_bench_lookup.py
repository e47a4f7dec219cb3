"""Private lookup benchmark (issue 26, docs/private-lookup.md), all in one process, one core:

- the cost of one ristretto255 scalar multiplication (libsodium, through rbcl), measured in the
  same run as the yardstick;
- the hub's blinded evaluations per second in batches of 1,000, the batched DLEQ proof included
  (``blind_evaluate_batch``), and its ratio to scalar multiplications per second;
- building the table: PRF evaluations per second (``Evaluate``), and what one entry costs in the
  published table (raw and in the JSON document) and in PostgreSQL (``LookupTag`` heap + index);
- the client's time per 1,000 lookups: blind, verify the batched proof, unblind, check the table
  (the hub's evaluation and HTTP excluded: they are the figures above).

Run with `make bench` (or `pytest -m bench -s tests/bench/test_bench_lookup.py`). Prints figures;
fails only if an output is wrong.
"""

import base64
import os
import statistics
import time

import pytest
import rbcl
from concordat_client import lookup as client
from django.db import connection

from federation.contributions.models import Entry
from federation.lookup import voprf
from federation.lookup.models import LookupTag
from federation.lookup.services import lookup_key_create
from federation.lookup.table import lookup_table, lookup_table_refresh
from members.actors import Actor
from tests.support.parties import random_hex

pytestmark = pytest.mark.bench

BATCH = 1_000
RUNS = 5
TABLE_N = int(os.environ.get("CONCORDAT_BENCH_LOOKUP_TABLE_N", 20_000))


def _median_seconds(function, runs=RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_evaluations_against_scalar_multiplication_and_client_time():
    sk, pk = voprf.generate_key_pair()
    points = [rbcl.crypto_core_ristretto255_random() for _ in range(BATCH)]
    scalars = [voprf.random_scalar() for _ in range(BATCH)]

    def scalar_mults():
        for s, p in zip(scalars, points, strict=True):
            rbcl.crypto_scalarmult_ristretto255(s, p)

    mult = _median_seconds(scalar_mults) / BATCH
    evaluation = _median_seconds(lambda: voprf.blind_evaluate_batch(sk, pk, points)) / BATCH
    print(
        f"\nscalar multiplication: {mult * 1e6:.1f} us ({1 / mult:,.0f}/s); blinded evaluation "
        f"(batch {BATCH}, proof included): {evaluation * 1e6:.1f} us ({1 / evaluation:,.0f}/s); "
        f"ratio {mult / evaluation:.2f} of a scalar multiplication"
    )

    # The client: 1,000 inputs blinded, one proof verified, 1,000 unblinded and looked up.
    inputs = [client.lookup_input("sha256", random_hex(64)) for _ in range(BATCH)]
    table = client.LookupTable(
        "k", pk, 0, 8, {"vetted": sorted(os.urandom(8) for _ in range(10_000))}
    )
    phases = {"blind": [], "evaluate (hub)": [], "verify+unblind": [], "check": []}
    for _ in range(RUNS):
        start = time.perf_counter()
        pairs = [client.blind(i) for i in inputs]
        blinded = [p[1] for p in pairs]
        phases["blind"].append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluated, proof = voprf.blind_evaluate_batch(sk, pk, blinded)
        phases["evaluate (hub)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        outputs = client.finalize_batch(
            inputs, [p[0] for p in pairs], evaluated, blinded, pk, proof
        )
        phases["verify+unblind"].append(time.perf_counter() - start)
        start = time.perf_counter()
        found = [table.state_of(o) for o in outputs]
        phases["check"].append(time.perf_counter() - start)
    assert outputs == [voprf.evaluate(sk, i) for i in inputs]
    assert found.count(None) == BATCH
    client_total = sum(
        statistics.median(v) for k, v in phases.items() if not k.startswith("evaluate")
    )
    print(
        "client per 1,000 lookups: "
        + ", ".join(f"{k} {statistics.median(v) * 1e3:.0f} ms" for k, v in phases.items())
        + f"; client total {client_total * 1e3:.0f} ms"
    )


@pytest.mark.django_db
def test_table_build_rate_and_size_per_entry(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lookup_key_create(actor=Actor.system("bench"))
    Entry.objects.bulk_create(
        Entry(signal_type="sha256", value=random_hex(64), state="vetted") for _ in range(TABLE_N)
    )
    start = time.perf_counter()
    refresh = lookup_table_refresh()
    built = time.perf_counter() - start
    assert refresh.rebuilt and refresh.applied == TABLE_N
    table = lookup_table()
    packed = sum(len(v) for v in table.tags.values())
    document = sum(len(base64.b64encode(v)) for v in table.tags.values())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [LookupTag._meta.db_table])
        (database_bytes,) = cursor.fetchone()
    print(
        f"\ntable of {TABLE_N:,} entries built in {built:.1f} s ({TABLE_N / built:,.0f} "
        f"evaluations/s); per entry: {packed / TABLE_N:.0f} bytes raw, "
        f"{document / TABLE_N:.2f} bytes in the JSON table, {database_bytes / TABLE_N:.0f} bytes "
        f"in PostgreSQL (LookupTag with its indexes)"
    )
