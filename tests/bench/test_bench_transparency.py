"""Transparency log benchmark (run with `make bench`), on PostgreSQL:

1. sequencing throughput: 1,000,000 audit events COPYed in, then ``sequence_pending`` to
   completion (batches of TRANSPARENCY_SEQUENCE_BATCH, a signed checkpoint per batch), events/s;
2. proof latency at 1,000,000 leaves (target < 5 ms each, read from the stored levels): 200 random
   inclusion and 200 random consistency proofs through the service functions and through the
   HTTP API (DRF's test client, an auditor's token), median and p95;
3. checkpoint signing time.

Figures are printed; the run fails if proofs do not verify or the 5 ms target is missed.
"""

import random
import statistics
import time
from datetime import UTC, datetime

import pytest
from concordat_client import verifier
from django.conf import settings
from django.db import transaction

from federation.db.bulk_insert import copy_rows
from federation.transparency import log_selectors, merkle
from federation.transparency.checkpoints import sign_checkpoint
from federation.transparency.models import AuditEvent, Checkpoint
from federation.transparency.sequencer import sequence_pending

pytestmark = pytest.mark.bench

EVENTS = int(__import__("os").environ.get("CONCORDAT_BENCH_LOG_EVENTS", 1_000_000))
SAMPLES = 200
TARGET_MS = 5.0
COLUMNS = ["occurred_at", "action", "actor_type", "actor_id", "actor_label", "organisation",
           "object_type", "object_id", "data"]  # fmt: skip


def insert_events(count: int) -> None:
    now = datetime.now(UTC)
    chunk = 100_000
    for offset in range(0, count, chunk):
        rows = [
            (now, "contribution.accepted", "credential", "cc_bench", "bench via cli", "acme",
             "contribution", f"{i:032x}", {"signal_type": "pdq", "labels": ["attack-footage"], "n": i})
            for i in range(offset, min(offset + chunk, count))
        ]  # fmt: skip
        with transaction.atomic():
            copy_rows(AuditEvent, COLUMNS, rows)


def timed_ms(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms, max {ordered[-1]:.2f} ms"


@pytest.mark.django_db(transaction=True)
def test_bench_transparency_log(auditor):
    started = time.perf_counter()
    insert_events(EVENTS)
    inserted = time.perf_counter() - started
    preexisting = AuditEvent.objects.count() - EVENTS  # the auditor's own creation

    started = time.perf_counter()
    sequenced = sequence_pending()
    elapsed = time.perf_counter() - started
    size = EVENTS + preexisting
    assert sequenced == size
    checkpoint = log_selectors.latest_checkpoint()
    assert checkpoint.tree_size == size

    key = verifier.parse_verifier_key(auditor.client.get("/api/v1/log/key").json()["vkey"])
    signed = verifier.verify_checkpoint(checkpoint.note, key)
    rng = random.Random(6962)
    older = list(Checkpoint.objects.values_list("tree_size", "root_hash"))

    service_inclusion, service_consistency, api_inclusion, api_consistency = [], [], [], []
    for _ in range(SAMPLES):
        index = rng.randrange(size)
        service_inclusion.append(
            timed_ms(log_selectors.inclusion_proof, leaf_index=index, tree_size=size)
        )
        proof = log_selectors.inclusion_proof(leaf_index=index, tree_size=size)
        leaf = log_selectors.read_nodes({(0, index)})[(0, index)]
        verifier.verify_inclusion(index, size, leaf, proof.inclusion_path, signed.root_hash)

        first, first_root = rng.choice(older)
        service_consistency.append(
            timed_ms(log_selectors.consistency_proof, first=first, second=size)
        )
        proof = log_selectors.consistency_proof(first=first, second=size)
        verifier.verify_consistency(
            first, size, bytes(first_root), signed.root_hash, proof.consistency_path
        )

        url = f"/api/v1/log/proof/inclusion?index={index}&tree_size={size}"
        started_request = time.perf_counter()
        response = auditor.client.get(url)
        api_inclusion.append((time.perf_counter() - started_request) * 1000)
        assert response.status_code == 200
        url = f"/api/v1/log/proof/consistency?first={rng.randrange(1, size)}&second={size}"
        started_request = time.perf_counter()
        response = auditor.client.get(url)
        api_consistency.append((time.perf_counter() - started_request) * 1000)
        assert response.status_code == 200

    root = merkle.leaf_hash(b"bench")
    signing = [
        timed_ms(sign_checkpoint, tree_size=size, root_hash=root, signed_at=datetime.now(UTC))
        for _ in range(1000)
    ]

    print()
    print(f"Transparency log benchmark, PostgreSQL, batch {settings.TRANSPARENCY_SEQUENCE_BATCH}")
    print(f"  inserted {EVENTS:,} audit events with COPY in {inserted:.1f} s")
    print(
        f"  sequenced {sequenced:,} events in {elapsed:.1f} s: {sequenced / elapsed:,.0f} events/s "
        f"({Checkpoint.objects.count()} checkpoints signed)"
    )
    print(f"  inclusion proof at {size:,} leaves, service:   {summary(service_inclusion)}")
    print(f"  consistency proof at {size:,} leaves, service: {summary(service_consistency)}")
    print(f"  inclusion proof at {size:,} leaves, HTTP API:  {summary(api_inclusion)}")
    print(f"  consistency proof at {size:,} leaves, HTTP API: {summary(api_consistency)}")
    print(f"  checkpoint signing: {summary(signing)}")
    assert statistics.median(service_inclusion) < TARGET_MS
    assert statistics.median(service_consistency) < TARGET_MS
