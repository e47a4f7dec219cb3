"""Matching benchmark (issues 11 and 28, docs/matching.md): the PDQ index, and the match service
end to end, against faiss-cpu ``IndexBinaryFlat`` range search, in the same run on the same data,
both single-threaded.

For each data set (1,000,000 hashes by default, ``CONCORDAT_BENCH_MATCH_N``): uniform random,
skewed (every bit 1 with probability 0.7) and clustered (10,000 centres with 100 near-duplicates
each, 1-4 bits from their centre; the queries 0-4 bits from a centre, so each has about 100
results), each with planted near-duplicates of the 1,000 queries at distances 0-32 (half with
flips spread one per byte, the worst case for a chunked index), stored in random order:

- index build time, bytes held per hash (its arrays) and the process's RSS growth;
- single-query latency p50/p99 over the 1,000 queries, one at a time (after one warm pass);
- throughput for a batch of 1,000 queries: median of ``RUNS`` runs, and faiss's the same way;
- recall of both against numpy brute force (must be 100% for the index);
- add and removal latency on the live index (10,000 each, so a delta merge runs), p50/p99/max.

Then how the index's figures grow with the size (``CONCORDAT_BENCH_MATCH_SIZES``, default
100,000 and 1,000,000). Those are the index alone; ``test_bench_match_service_against_faiss_flat``
puts the same hashes in PostgreSQL and times ``match_answer`` (the API's whole answer as JSON
bytes), the kernel alone and faiss in one run, and the answer building (service minus kernel) apart.
Run with `make bench`; it fails only if a result is inexact.
"""

import gc
import os
import statistics
import time

import numpy as np
import pytest

from federation.matching.index import PdqIndex, words_hex

pytestmark = pytest.mark.bench

N = int(os.environ.get("CONCORDAT_BENCH_MATCH_N", 1_000_000))
SIZES = [int(s) for s in os.environ.get("CONCORDAT_BENCH_MATCH_SIZES", "100000,1000000").split(",")]
QUERIES = 1_000
THRESHOLD = 31
RUNS = 5
FAISS_RUNS = 2
CHUNK = 100_000
CLUSTER_SIZE = 100
CLUSTER_FLIPS = 4


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bits_to_words(bits: np.ndarray) -> np.ndarray:
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)


def _generate(kind: str, n: int, rng) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    out = np.empty((n, 4), dtype=np.uint64)
    if kind == "skewed":
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            out[start : start + m] = _bits_to_words(rng.random((m, 256)) < 0.7)
        return out
    # clustered: CLUSTER_SIZE near-duplicates (1-4 bits from it) of each of n / CLUSTER_SIZE
    # centres, as many edits of one picture are
    centres = rng.integers(0, 2**64, size=(max(n // CLUSTER_SIZE, 1), 4), dtype=np.uint64)
    return _near(centres[np.arange(n) % len(centres)], rng, 1, CLUSTER_FLIPS)


def _near(rows: np.ndarray, rng, low: int, high: int) -> np.ndarray:
    """Each row with ``low``-``high`` random bits flipped (two draws of one bit undo each other,
    so a few rows have fewer)."""
    out = rows.copy()
    count = rng.integers(low, high + 1, size=len(rows))
    for k in range(high):
        bit = rng.integers(0, 256, size=len(rows))
        flip = np.where(k < count, np.uint64(1) << (bit % 64).astype(np.uint64), np.uint64(0))
        for word in range(4):
            chosen = bit // 64 == word
            out[chosen, word] ^= flip[chosen]
    return out


def _planted(queries: np.ndarray, rng) -> np.ndarray:
    rows = []
    for i, q in enumerate(queries):
        for d in (int(rng.integers(0, 33)), int(rng.integers(0, 33))):
            if i % 2:  # spread: one flip in each of d distinct bytes
                bits = [b * 8 + int(rng.integers(0, 8)) for b in rng.choice(32, d, replace=False)]
            else:
                bits = rng.choice(256, d, replace=False)
            row = q.copy()
            for bit in bits:
                row[int(bit) // 64] ^= np.uint64(1) << np.uint64(int(bit) % 64)
            rows.append(row)
    return np.array(rows, dtype=np.uint64)


def dataset(kind: str, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        data = _generate(kind, n, rng)
        centres = data[: max(n // CLUSTER_SIZE, 1)]  # one member of each cluster
        queries = _near(centres[rng.integers(0, len(centres), size=QUERIES)], rng, 0, 4)
    else:
        queries = _generate(kind, QUERIES, rng)
        data = _generate(kind, n, rng)
    hashes = np.unique(np.concatenate([data, _planted(queries, rng)]), axis=0)
    return hashes[rng.permutation(len(hashes))], queries  # stored in no particular order


def brute_force_sets(hashes, queries, threshold) -> list[set[int]]:
    out = []
    for q in queries:
        d = np.bitwise_count(hashes ^ q).sum(axis=1, dtype=np.int32)
        out.append(set(np.flatnonzero(d <= threshold).tolist()))
    return out


def _index_sets(index, queries, threshold) -> list[set[int]]:
    qi, rows, _dist, _view = index.search_words(queries, threshold=threshold)
    sets = [set() for _ in range(len(queries))]
    for q, row in zip(qi.tolist(), rows.tolist(), strict=True):
        sets[q].add(row)
    return sets


def _recall(found, truth) -> float:
    total = sum(len(t) for t in truth)
    hit = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    return hit / total if total else 1.0


def _pct(values, p) -> float:
    return float(np.percentile(np.asarray(values), p))


def build_index(hashes) -> tuple[PdqIndex, float, int]:
    rss = _rss()
    started = time.perf_counter()
    index = PdqIndex()
    n = len(hashes)
    index.build(hashes, np.zeros(n, dtype=np.int16), np.ones(n, dtype=np.uint8))
    return index, time.perf_counter() - started, _rss() - rss


def faiss_flat(hashes):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(256)
    index.add(np.ascontiguousarray(hashes.astype(">u8")).view(np.uint8).reshape(-1, 32))
    return index


def faiss_sets(index, queries, threshold) -> tuple[list[set[int]], float]:
    xq = np.ascontiguousarray(queries.astype(">u8")).view(np.uint8).reshape(-1, 32)
    started = time.perf_counter()
    lims, _d, ids = index.range_search(xq, threshold + 1)  # faiss: distance < radius
    elapsed = time.perf_counter() - started
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(queries))], elapsed


def _warm_up():
    index, _, _ = build_index(_generate("uniform", 1000, np.random.default_rng(0)))
    index.search_words(_generate("uniform", 2, np.random.default_rng(0)), threshold=THRESHOLD)
    index.upsert("ab" * 32, state="vetted", quality=None)
    index.remove("ab" * 32)


@pytest.mark.parametrize("kind", ["uniform", "skewed", "clustered"])
def test_bench_pdq_index_against_faiss_flat(kind):
    _warm_up()
    hashes, queries = dataset(kind, N)
    n = len(hashes)
    index, build_seconds, rss_growth = build_index(hashes)
    truth = brute_force_sets(hashes, queries, THRESHOLD)
    found = _index_sets(index, queries, THRESHOLD)
    index_recall = _recall(found, truth)
    exact = found == truth

    for q in queries:  # a warm pass first: a serving index is warm
        index.search_words(q.reshape(1, 4), threshold=THRESHOLD)
    single = []
    for q in queries:
        one = q.reshape(1, 4)
        started = time.perf_counter()
        index.search_words(one, threshold=THRESHOLD)
        single.append(time.perf_counter() - started)
    batch = []
    for _ in range(RUNS):
        started = time.perf_counter()
        index.search_words(queries, threshold=THRESHOLD)
        batch.append(time.perf_counter() - started)

    flat = faiss_flat(hashes)
    faiss_batch = []
    for _ in range(FAISS_RUNS):
        faiss_found, elapsed = faiss_sets(flat, queries, THRESHOLD)
        faiss_batch.append(elapsed)
    faiss_recall = _recall(faiss_found, truth)
    del flat

    rng = np.random.default_rng(5)
    # 10,000 adds: more than DELTA_MAX, so a background merge runs during them
    new = [words_hex(h) for h in rng.integers(0, 2**64, size=(10_000, 4), dtype=np.uint64)]
    adds, removes = [], []
    for value in new:
        started = time.perf_counter()
        index.upsert(value, state="vetted", quality=None)
        adds.append(time.perf_counter() - started)
    index.wait_for_merge()
    for value in new:
        started = time.perf_counter()
        index.remove(value)
        removes.append(time.perf_counter() - started)

    ours = statistics.median(batch)
    theirs = statistics.median(faiss_batch)
    print(
        f"\n[{kind}] n={n:,} threshold={THRESHOLD} true matches={sum(map(len, truth)):,}"
        f"\n  build {build_seconds:.2f} s; index arrays {index.memory_bytes() / n:.0f} B/hash;"
        f" RSS growth {rss_growth / n:.0f} B/hash"
        f"\n  single query p50 {_pct(single, 50) * 1e3:.3f} ms, p99 {_pct(single, 99) * 1e3:.3f} ms"
        f"\n  batch of {QUERIES}: index median {ours * 1e3:.1f} ms ({QUERIES / ours:,.0f} q/s;"
        f" runs {', '.join(f'{b * 1e3:.0f}' for b in batch)} ms)"
        f"\n  faiss IndexBinaryFlat range_search median {theirs * 1e3:.0f} ms"
        f" ({QUERIES / theirs:,.0f} q/s); ratio {theirs / ours:.1f}x"
        f"\n  recall: index {index_recall:.4%} (exact sets: {exact}), faiss {faiss_recall:.4%}"
        f"\n  add p50 {_pct(adds, 50) * 1e6:.0f} us p99 {_pct(adds, 99) * 1e6:.0f} us;"
        f" max {max(adds) * 1e3:.1f} ms; remove p50 {_pct(removes, 50) * 1e6:.0f} us"
        f" p99 {_pct(removes, 99) * 1e6:.0f} us max {max(removes) * 1e3:.1f} ms"
    )
    assert exact


def test_bench_pdq_index_growth():
    _warm_up()
    print()
    for n in SIZES:
        hashes, queries = dataset("uniform", n, seed=3)
        index, build_seconds, _ = build_index(hashes)
        single = []
        for q in queries[:300]:
            started = time.perf_counter()
            index.search_words(q.reshape(1, 4), threshold=THRESHOLD)
            single.append(time.perf_counter() - started)
        batch = []
        for _ in range(3):
            started = time.perf_counter()
            index.search_words(queries, threshold=THRESHOLD)
            batch.append(time.perf_counter() - started)
        print(
            f"[growth] n={len(hashes):>10,}: build {build_seconds:6.2f} s,"
            f" {index.memory_bytes() / len(hashes):.0f} B/hash,"
            f" single p50 {_pct(single, 50) * 1e3:.3f} ms p99 {_pct(single, 99) * 1e3:.3f} ms,"
            f" batch of {QUERIES} {statistics.median(batch) * 1e3:.1f} ms"
        )


SERVICE_RUNS = 5


def _hex_values(hashes: np.ndarray) -> list[str]:
    text = np.ascontiguousarray(hashes.astype(">u8")).tobytes().hex()
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def _brute_force_answers(hashes, values, queries, threshold) -> list[dict[str, int]]:
    out = []
    for q in queries:
        d = np.bitwise_count(hashes ^ q).sum(axis=1, dtype=np.int32)
        rows = np.flatnonzero(d <= threshold)
        out.append({values[r]: int(d[r]) for r in rows.tolist()})
    return out


def _timed(function, runs):
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["uniform", "skewed", "clustered"])
def test_bench_match_service_against_faiss_flat(kind, acme_submitter, globex_reviewer):
    """The match service end to end (``match_answer``: the store, the index, the answer as the
    API returns it, JSON bytes, and the audit event) on N vetted PDQ entries in PostgreSQL, against
    faiss ``IndexBinaryFlat`` range search on the same hashes and queries, both one thread:
    faiss, the kernel alone, the service, and the service's time past the kernel (building the
    answers) separately; single-signal requests p50/p99; the answers checked against brute force.
    """
    import orjson
    from django.db import connection

    from federation.matching.answers import pdq_answer_document, render_matched_documents
    from federation.matching.services import Signal, match_answer
    from federation.matching.store import match_store
    from tests.support.bench_seeding import copy_vetted_pdq_entries

    _warm_up()
    hashes, queries = dataset(kind, N)
    values = _hex_values(hashes)
    query_values = _hex_values(queries)
    connection.ensure_connection()
    started = time.perf_counter()
    copy_vetted_pdq_entries(
        connection.connection, values, origin_hub="bench.localhost", change_rows=False
    )
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    store = match_store()
    loaded = time.perf_counter() - started
    truth = _brute_force_answers(hashes, values, queries, THRESHOLD)
    actor = globex_reviewer.actor
    signals = [Signal("pdq", v) for v in query_values]

    def service(batch=signals):
        return match_answer(actor=actor, signals=batch, threshold=THRESHOLD)

    def found_distances(body: bytes) -> list[dict[str, int]]:
        return [
            {m["signal"]["value"]: m["distance"] for m in r["matches"]}
            for r in orjson.loads(body)["results"]
        ]

    started = time.perf_counter()
    first = service()
    cold = time.perf_counter() - started
    exact = found_distances(first) == truth
    first = None
    service_time, service_runs, body = _timed(service, SERVICE_RUNS)
    assert found_distances(body) == truth
    answer_mib = len(body) / 2**20
    body = None
    kernel_time, kernel_runs, _ = _timed(
        lambda: store.pdq.search_words(queries, threshold=THRESHOLD), SERVICE_RUNS
    )
    # The service's parts apart: the search with the answer's order (search_sorted), then the
    # result building alone (the check, the kept renderings read, the whole document laid out
    # and joined, as the service does for pdq signals), each timed on its own.
    order_time, _, ordered = _timed(
        lambda: store.pdq.search_sorted(queries, threshold=THRESHOLD), SERVICE_RUNS
    )

    def build_results():
        # as the service does: the cycle collector paused while building, then the one young
        # collection that resuming it costs, here made at once so that it is timed
        gc.disable()
        try:
            spans, complete = store.rendered_spans(
                ordered, render_matched_documents, store.current()
            )
            return pdq_answer_document(
                b'{"results":[',
                signal_documents,
                spans,
                ordered.bounds,
                ordered.which,
                ordered.distances,
                None,
                complete=complete,
            )
        finally:
            gc.enable()
            gc.collect(0)

    signal_documents = [orjson.dumps({"type": "pdq", "value": v}) for v in query_values]
    build_time, build_runs, built = _timed(build_results, SERVICE_RUNS)
    assert int(built[1].sum()) == sum(map(len, truth))
    built = None
    for q in queries[:100]:  # warm
        service([Signal("pdq", words_hex(q))])
    single_service, single_kernel = [], []
    for value, q in zip(query_values, queries, strict=True):
        one = [Signal("pdq", value)]
        started = time.perf_counter()
        service(one)
        single_service.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.pdq.search_words(q.reshape(1, 4), threshold=THRESHOLD)
        single_kernel.append(time.perf_counter() - started)

    flat = faiss_flat(hashes)
    faiss_time, faiss_runs, (faiss_found, _) = _timed(
        lambda: faiss_sets(flat, queries, THRESHOLD), FAISS_RUNS
    )
    flat = None  # its copy of the hashes
    matches = sum(map(len, truth))
    print(
        f"\n[service {kind}] n={len(hashes):,} threshold={THRESHOLD} batch of {QUERIES},"
        f" {matches:,} matches ({matches / QUERIES:.1f} per query);"
        f" seeded in {seeded:.0f} s, store loaded in {loaded:.1f} s"
        f"\n  faiss IndexBinaryFlat range_search: median {faiss_time * 1e3:.0f} ms"
        f" (runs {', '.join(f'{t * 1e3:.0f}' for t in faiss_runs)})"
        f"\n  kernel (search_words): median {kernel_time * 1e3:.1f} ms"
        f" (runs {', '.join(f'{t * 1e3:.0f}' for t in kernel_runs)})"
        f" -> {faiss_time / kernel_time:.1f}x faiss"
        f"\n  service (match_answer, {answer_mib:.1f} MiB of JSON): median"
        f" {service_time * 1e3:.1f} ms"
        f" (runs {', '.join(f'{t * 1e3:.0f}' for t in service_runs)}; first {cold * 1e3:.0f} ms)"
        f" -> {faiss_time / service_time:.1f}x faiss"
        f"\n  answer building (service - kernel): {(service_time - kernel_time) * 1e3:.1f} ms"
        f" = {(service_time - kernel_time) / max(matches, 1) * 1e9:.0f} ns per match"
        f"\n  apart: search in the answer's order (search_sorted) {order_time * 1e3:.1f} ms;"
        f" result building alone (the check, kept renderings, the document laid out and joined)"
        f" {build_time * 1e3:.1f} ms (runs {', '.join(f'{t * 1e3:.0f}' for t in build_runs)})"
        f" = {build_time / max(matches, 1) * 1e9:.0f} ns per match"
        f"\n  single signal: service p50 {_pct(single_service, 50) * 1e3:.3f} ms"
        f" p99 {_pct(single_service, 99) * 1e3:.3f} ms;"
        f" kernel p50 {_pct(single_kernel, 50) * 1e3:.3f} ms"
        f" p99 {_pct(single_kernel, 99) * 1e3:.3f} ms"
        f"\n  service answers exact against brute force: {exact}; faiss found"
        f" {sum(map(len, faiss_found)):,} of {matches:,}"
    )
    assert exact


HTTP_ENTRIES = int(os.environ.get("CONCORDAT_BENCH_MATCH_HTTP_ENTRIES", 1_000_000))
HTTP_REQUESTS = 10


def _load_random_pdq(hub, count: int, rng) -> list[str]:
    """``count`` vetted PDQ entries with random values in the hub's database; returns the values."""
    from tests.support.bench_seeding import seed_vetted_pdq_entries

    values = [words_hex(h) for h in rng.integers(0, 2**64, size=(count, 4), dtype=np.uint64)]
    seed_vetted_pdq_entries(hub, values)
    return values


def test_bench_match_api_over_http():
    """POST /api/v1/match with 1,000 PDQ signals per request to a live gunicorn (one worker,
    so one index) over HTTP_ENTRIES vetted entries: the first request (which loads the index
    from PostgreSQL) and then signals/s over HTTP_REQUESTS requests (issue target >= 5,000/s)."""
    import json
    import urllib.request

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.support.harness import running_hub

    rng = np.random.default_rng(9)
    with running_hub("matchbench", web_workers=1) as hub:
        hub.create_member(
            org="acme", user="alice", role="submitter", signing_key=Ed25519PrivateKey.generate()
        )
        token = hub.create_member(org="globex", user="gus", role="reviewer", token=True)["token"]
        values = _load_random_pdq(hub, HTTP_ENTRIES, rng)
        hub.manage("sync_sequence")

        def post(signals) -> tuple[float, dict]:
            body = json.dumps({"signals": signals}).encode()
            request = urllib.request.Request(hub.url + "/api/v1/match", data=body, method="POST")
            request.add_header("Authorization", f"Bearer {token}")
            request.add_header("Content-Type", "application/json")
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as response:
                answer = json.loads(response.read())
            return time.perf_counter() - started, answer

        def batch():
            # 1,000 signals: 990 random, 10 near-duplicates (5 bits) of shared entries
            signals = [
                {"type": "pdq", "value": words_hex(h)}
                for h in rng.integers(0, 2**64, size=(990, 4), dtype=np.uint64)
            ]
            for value in rng.choice(values, 10):
                near = int(value, 16) ^ 0b10101010101
                signals.append({"type": "pdq", "value": f"{near:064x}"})
            return signals

        first, answer = post(batch())
        times = []
        found = 0
        for _ in range(HTTP_REQUESTS):
            elapsed, answer = post(batch())
            times.append(elapsed)
            found += sum(bool(r["matches"]) for r in answer["results"])
        median = statistics.median(times)
        print(
            f"\n[http] {HTTP_ENTRIES:,} vetted PDQ entries; first request (loads the index) "
            f"{first:.2f} s; then {HTTP_REQUESTS} requests of 1,000 signals: median "
            f"{median * 1e3:.0f} ms = {1000 / median:,.0f} signals/s "
            f"(min {min(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms); "
            f"planted near-duplicates found {found}/{HTTP_REQUESTS * 10}"
        )
        assert found == HTTP_REQUESTS * 10


PEER_QUERIES = int(os.environ.get("CONCORDAT_BENCH_MATCH_PEER_QUERIES", 100))
PEER_ADDS = 3


@pytest.mark.parametrize("kind", ["uniform", "skewed"])
def test_bench_threatexchange_pdq_index_peer(kind):
    """python-threatexchange's ``PDQIndex`` (faiss multi-hash, what the field's open-source
    matcher serves) on the same data: build time, RSS growth, throughput and recall on
    ``PEER_QUERIES`` queries, and the time of one ``add`` on the built index. Installed by
    `make bench` (requirements-bench.txt); skipped where it is not."""
    pdq_index = pytest.importorskip("threatexchange.signal_type.pdq.pdq_index")
    hashes, queries = dataset(kind, N)
    queries = queries[:PEER_QUERIES]
    values = [words_hex(h) for h in hashes]
    truth = brute_force_sets(hashes, queries, THRESHOLD)

    rss = _rss()
    started = time.perf_counter()
    peer = pdq_index.PDQIndex(entries=((value, row) for row, value in enumerate(values)))
    build_seconds = time.perf_counter() - started
    growth = _rss() - rss

    started = time.perf_counter()
    found = [{match.metadata for match in peer.query(words_hex(q))} for q in queries]
    query_seconds = time.perf_counter() - started

    adds = []
    for value in ("ab" * 32, "cd" * 32, "ef" * 32)[:PEER_ADDS]:
        started = time.perf_counter()
        peer.add(value, len(values))
        adds.append(time.perf_counter() - started)
    print(
        f"\n[{kind}] python-threatexchange PDQIndex, n={len(hashes):,}"
        f"\n  build {build_seconds:.1f} s; RSS growth {growth / len(hashes):.0f} B/hash"
        f" ({growth / 2**20:.0f} MiB)"
        f"\n  {len(queries)} single queries in {query_seconds:.2f} s"
        f" ({len(queries) / query_seconds:,.0f} q/s)"
        f"; recall {_recall(found, truth):.4%}"
        f"\n  one add on the built index: {', '.join(f'{a:.3f}' for a in adds)} s"
    )
