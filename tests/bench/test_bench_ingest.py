"""Ingest benchmark: bulk submission against raw Ed25519 verification (DESIGN.md: ingestion speed is
bounded by verification, not by the ORM; target: ingest at least half the verify-only rate).

1. Raw verification of 10,000 signed PDQ contributions with the hub's own verifier
   (``verify_signature``: libsodium) over their canonical bytes, one thread, best of three
   passes, in verifications/s: the baseline the target is a fraction of. OpenSSL's
   (cryptography's ``Ed25519PublicKey.verify``), which the hub used before, is printed beside it.
2. Bulk ingest of 10,000 more through real HTTP to a live hub (gunicorn on its own PostgreSQL
   database, tests/integration/harness.py): one request of 10,000 items, then five of 2,000 items.
   Time runs from sending the request to having read the whole response; rows are counted after.
3. One in-process run of contributions_submit on 10,000 items with a timing split (parse+JCS,
   Ed25519 verify, the rest of the check loop, the database write) to guide optimisation.

Run with `make bench`. Figures are printed; the run fails only if items are not stored.
"""

import base64
import json
import random
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.contributions.models import Contribution
from federation.signing import (
    canonical_bytes,
    decode_signature,
    format_timestamp,
    parse_contribution,
    sign_contribution,
    verify_signature,
)
from members.models import key_id_for
from tests.integration.harness import running_hub
from tests.parties import raw_public_key

pytestmark = pytest.mark.bench

ITEMS = 10_000
TARGET_RATIO = 0.5


def signed_pdq_items(
    private_key: Ed25519PrivateKey, *, hub: str, member: str, count: int, seed: int
) -> list[dict[str, Any]]:
    """``count`` distinct signed PDQ adds (deterministic values, fresh created_at)."""
    rng = random.Random(seed)
    key_id = key_id_for(raw_public_key(private_key))
    created_at = format_timestamp(datetime.now(UTC).replace(microsecond=0))
    items = []
    for _ in range(count):
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": hub,
            "member": member,
            "key_id": key_id,
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "created_at": created_at,
            "action": "add",
            "signal": {"type": "pdq", "value": f"{rng.getrandbits(256):064x}"},
            "labels": ["attack-footage"],
            "scope": "federation",
        }
        items.append(
            {"contribution": document, "signature": sign_contribution(private_key, document)}
        )
    return items


def verify_only_rate(
    private_key: Ed25519PrivateKey, items: list[dict[str, Any]], *, openssl: bool = False
) -> float:
    """Verifications per second of the bare Ed25519 check over precomputed canonical bytes: the
    hub's ``verify_signature``, or (``openssl``) cryptography's own ``verify``."""
    public_key = private_key.public_key()
    pairs = [
        (base64.b64decode(item["signature"]), canonical_bytes(item["contribution"]))
        for item in items
    ]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        if openssl:
            for signature, message in pairs:
                public_key.verify(signature, message)
        else:
            assert all(
                verify_signature(public_key, signature, message) for signature, message in pairs
            )
        best = min(best, time.perf_counter() - started)
    return len(pairs) / best


def post_bulk(url: str, token: str, items: list[dict[str, Any]]) -> tuple[float, dict]:
    """POST pre-encoded JSON; return the seconds from sending to the whole response read."""
    body = json.dumps({"items": items}).encode()
    request = urllib.request.Request(
        url + "/api/v1/contributions/bulk/",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        raw = response.read()
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(raw)


def report(label: str, count: int, seconds: float, verify_rate: float) -> float:
    rate = count / seconds
    ratio = rate / verify_rate
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(
        f"  {label:<34} {count:>6} items in {seconds:7.3f} s = {rate:9,.0f} contributions/s "
        f"({ratio:6.1%} of verify-only; {verdict} the {TARGET_RATIO:.0%} target)"
    )
    return rate


def test_bench_bulk_ingest_over_http_against_raw_verification():
    private_key = Ed25519PrivateKey.generate()
    with running_hub("bench", web_workers=2) as hub:
        member = hub.create_member(
            org="acme", user="alice", role="submitter", signing_key=private_key
        )
        one_batch = signed_pdq_items(
            private_key, hub=hub.hub_id, member="acme", count=ITEMS, seed=1
        )
        split = signed_pdq_items(private_key, hub=hub.hub_id, member="acme", count=ITEMS, seed=2)

        verify_rate = verify_only_rate(private_key, one_batch)
        print(f"\nIngest benchmark ({ITEMS:,} signed PDQ contributions)")
        openssl_rate = verify_only_rate(private_key, one_batch, openssl=True)
        print(f"  {'raw Ed25519 verify (hub: libsodium)':<34} {verify_rate:9,.0f} verifications/s")
        print(f"  {'raw Ed25519 verify (OpenSSL)':<34} {openssl_rate:9,.0f} verifications/s")

        # Warm up every gunicorn worker (imports, connections, the verification pool) outside
        # the timed runs: steady-state throughput is what is measured.
        warm_up = signed_pdq_items(private_key, hub=hub.hub_id, member="acme", count=400, seed=9)
        for start in range(0, len(warm_up), 50):
            _, body = post_bulk(hub.url, member["token"], warm_up[start : start + 50])
            assert body["created"] == 50
        hub.sql("DELETE FROM federation_entrylabel")
        # Contributions are append-only (a trigger); the benchmark resets as a superuser would.
        hub.sql("DELETE FROM federation_contribution", bypass_triggers=True)

        seconds, body = post_bulk(hub.url, member["token"], one_batch)
        assert body["created"] == ITEMS, {k: body[k] for k in ("created", "duplicate", "rejected")}
        stored = hub.sql("SELECT count(*) FROM federation_contribution")[0][0]
        assert stored == ITEMS
        report("HTTP bulk, 1 request x 10,000", ITEMS, seconds, verify_rate)

        total = 0.0
        for start in range(0, ITEMS, 2_000):
            seconds, body = post_bulk(hub.url, member["token"], split[start : start + 2_000])
            assert body["created"] == 2_000, body["results"][:3]
            total += seconds
        stored = hub.sql("SELECT count(*) FROM federation_contribution")[0][0]
        assert stored == 2 * ITEMS
        report("HTTP bulk, 5 requests x 2,000", ITEMS, total, verify_rate)


def _timed(timings: dict[str, float], name: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def test_bench_in_process_breakdown(acme_submitter, monkeypatch):
    """Where the time of one contributions_submit call goes (no profiler, so no distortion)."""
    from django.conf import settings

    from federation.contributions import services, storage

    items = signed_pdq_items(
        acme_submitter.private_key,
        hub=settings.HUB_ID,
        member="acme",
        count=ITEMS,
        seed=3,
    )
    public_key = acme_submitter.private_key.public_key()

    started = time.perf_counter()
    parsed = [parse_contribution(item["contribution"]) for item in items]
    parse_seconds = time.perf_counter() - started
    started = time.perf_counter()
    signatures = [decode_signature(item["signature"]) for item in items]
    decode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    assert all(
        verify_signature(public_key, signature, p.canonical)
        for signature, p in zip(signatures, parsed, strict=True)
    )
    verify_seconds = time.perf_counter() - started

    # The check loop and the write step, timed by wrapping the service's steps when it has them.
    timings: dict[str, float] = {}
    for module, name in ((services, "check_contributions"), (storage, "_store")):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, _timed(timings, name, getattr(module, name)))
    started = time.perf_counter()
    results = services.contributions_submit(actor=acme_submitter.actor, items=items)
    total_seconds = time.perf_counter() - started
    assert sum(r.status == storage.CREATED for r in results) == ITEMS
    assert Contribution.objects.count() == ITEMS

    print(f"\nIn-process contributions_submit, {ITEMS:,} PDQ adds: {total_seconds:.3f} s total")
    print(f"  {ITEMS / total_seconds:9,.0f} contributions/s")
    parts = [
        ("parse_contribution (schema + JCS + SHA-256)", parse_seconds),
        ("decode_signature (base64)", decode_seconds),
        ("Ed25519 verify", verify_seconds),
    ]
    rows = []
    if "check_contributions" in timings:
        rows.append(("check loop (check_contributions), of which:", timings["check_contributions"]))
        rows += [(f"  {label} [separate pass]", seconds) for label, seconds in parts]
        accounted = timings["check_contributions"]
    else:
        rows += parts
        accounted = sum(seconds for _, seconds in parts)
    if "_store" in timings:
        rows.append(("database write (_store, bulk inserts)", timings["_store"]))
        accounted += timings["_store"]
    rows.append(("everything else (savepoint, results)", total_seconds - accounted))
    for label, seconds in rows:
        share = seconds / total_seconds
        print(f"  {label:<62} {seconds:7.3f} s  {share:6.1%}  {seconds / ITEMS * 1e6:7.1f} µs/item")
