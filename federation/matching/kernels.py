"""The compiled kernels of the PDQ index (numba, ``nogil``: several threads may search at once).

A hash is four ``uint64`` words; it is cut into 16 chunks of 16 bits, chunk ``c`` being bits
``16 * (c % 4)`` … ``16 * (c % 4) + 15`` of word ``c // 4``. Per chunk the base rows are kept in
CSR form: ``ids[c, offsets[c, v]:offsets[c, v + 1]]`` are the rows whose chunk ``c`` equals ``v``.

Why a search is exact (the generalised pigeonhole bound, Norouzi et al., "Fast Exact Search in
Hamming Space with Multi-Index Hashing"): the Hamming distance of two hashes is the sum of the
distances of their 16 chunks, ``d = d_0 + … + d_15``. A search with threshold ``T`` gives each chunk
a radius ``r_c`` in ``-1 … MAX_RADIUS`` with ``sum(r_c + 1) >= T + 1`` and probes, in chunk ``c``,
every bucket within ``r_c`` of the query's chunk (``r_c = -1``: chunk ``c`` is not probed at all).
If a hash with ``d <= T`` were in no probed bucket, every chunk would have ``d_c >= r_c + 1``, so
``d >= sum(r_c + 1) >= T + 1``: a contradiction. Hence every hash within ``T`` is a candidate, and
each candidate is verified on its full 256 bits, so nothing outside ``T`` is reported either.

The radii are chosen **per query** from the bucket sizes (``_radii``): greedily, the next unit of
the budget goes to the chunk where it adds the fewest candidates. On uniform data that is
``r_c = 1`` everywhere for ``T = 31``; on skewed or clustered data an overfull bucket is simply
not probed (radius -1 or 0 for that chunk) and other chunks take a larger radius. Whatever the
choice, the sum condition holds, so exactness does not depend on the data.

Each hash is reported once: it is reported only from the lowest chunk ``c`` with ``d_c <= r_c``
(it lies in exactly one probed bucket of that chunk, since a chunk's probed buckets are distinct).

Rows added after the CSR was built (``n_base <= row < n_rows``, the delta) are scanned linearly;
the delta is bounded (``index.DELTA_MAX``) and merged into the CSR when full. Removed rows are
tombstoned in ``alive`` and skipped.
"""

import numpy as np
from numba import njit

CHUNKS = 16
CHUNK_BITS = 16
BUCKETS = 1 << CHUNK_BITS
MAX_RADIUS = 4  # per chunk; 16 * (4 + 1) = 80 units, enough for any threshold <= 79
PROBE_COST = 16  # a probe's own cost (about two cache misses), in candidates, when choosing radii


@njit(inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(inline="always")
def _chunk(words, c):
    return np.int64((words[c >> 2] >> np.uint64(16 * (c & 3))) & np.uint64(0xFFFF))


@njit(inline="always")
def _distance(hashes, row, q):
    return (
        _popcount(hashes[row, 0] ^ q[0])
        + _popcount(hashes[row, 1] ^ q[1])
        + _popcount(hashes[row, 2] ^ q[2])
        + _popcount(hashes[row, 3] ^ q[3])
    )


@njit(inline="always")
def _chunk_distance(a, b):
    x = np.uint64(a ^ b)
    return _popcount(x)


@njit(inline="always")
def _pre_words(c):
    """The two words kept beside chunk ``c``'s row ids: the half of the hash the chunk is not in."""
    first = 2 if c < 8 else 0
    return first, first + 1


@njit(nogil=True, cache=True)
def build_csr(hashes, n_rows):
    """The CSR of rows ``0 … n_rows - 1`` per chunk: ``(offsets[16, 65537], ids[16, n_rows],
    pre[16, n_rows, 2])``; ``pre`` holds, beside each row id, the 128 bits of the hash outside
    the chunk's half, so most candidates are rejected from the bucket's own contiguous memory."""
    offsets = np.zeros((CHUNKS, BUCKETS + 1), dtype=np.uint32)
    ids = np.empty((CHUNKS, n_rows), dtype=np.uint32)
    pre = np.empty((CHUNKS, n_rows, 2), dtype=np.uint64)
    cursor = np.empty(BUCKETS, dtype=np.uint32)
    for c in range(CHUNKS):
        for row in range(n_rows):
            offsets[c, _chunk(hashes[row], c) + 1] += 1
        for v in range(BUCKETS):
            offsets[c, v + 1] += offsets[c, v]
        for v in range(BUCKETS):
            cursor[v] = offsets[c, v]
        w0, w1 = _pre_words(c)
        for row in range(n_rows):
            v = _chunk(hashes[row], c)
            k = cursor[v]
            ids[c, k] = row
            pre[c, k, 0] = hashes[row, w0]
            pre[c, k, 1] = hashes[row, w1]
            cursor[v] += 1
    return offsets, ids, pre


@njit(inline="always")
def _size(offsets, c, v):
    return np.int64(offsets[c, v + 1]) - np.int64(offsets[c, v])


@njit(inline="always")
def _level_cost(offsets, c, qc, level):
    """Candidates in the buckets at exactly ``level`` bits from ``qc`` in chunk ``c``, plus the
    probes' own cost."""
    total = 0
    if level == 0:
        return _size(offsets, c, qc) + PROBE_COST
    if level == 1:
        for a in range(CHUNK_BITS):
            total += _size(offsets, c, qc ^ (1 << a)) + PROBE_COST
        return total
    if level == 2:
        for a in range(CHUNK_BITS):
            for b in range(a + 1, CHUNK_BITS):
                total += _size(offsets, c, qc ^ (1 << a) ^ (1 << b)) + PROBE_COST
        return total
    if level == 3:
        for a in range(CHUNK_BITS):
            for b in range(a + 1, CHUNK_BITS):
                for d in range(b + 1, CHUNK_BITS):
                    total += _size(offsets, c, qc ^ (1 << a) ^ (1 << b) ^ (1 << d)) + PROBE_COST
        return total
    for a in range(CHUNK_BITS):
        for b in range(a + 1, CHUNK_BITS):
            for d in range(b + 1, CHUNK_BITS):
                for e in range(d + 1, CHUNK_BITS):
                    v = qc ^ (1 << a) ^ (1 << b) ^ (1 << d) ^ (1 << e)
                    total += _size(offsets, c, v) + PROBE_COST
    return total


_BINOMIAL = np.array([1, 16, 120, 560, 1820, 4368], dtype=np.int64)  # C(16, k)


@njit(inline="always")
def _radii(offsets, qcs, threshold, radii):
    """Choose per-chunk radii with ``sum(radii + 1) == threshold + 1`` (the exactness condition),
    greedily by the fewest added candidates. Returns False if the threshold is out of reach."""
    need = threshold + 1
    if need > CHUNKS * (MAX_RADIUS + 1):
        return False
    marginal = np.empty(CHUNKS, dtype=np.int64)
    level1 = np.empty(CHUNKS, dtype=np.int64)
    for c in range(CHUNKS):
        radii[c] = -1
        marginal[c] = _level_cost(offsets, c, qcs[c], 0)
    for _ in range(need):
        best = -1
        for c in range(CHUNKS):
            if radii[c] < MAX_RADIUS and (best < 0 or marginal[c] < marginal[best]):
                best = c
        radii[best] += 1
        r = radii[best]
        if r == 0:
            level1[best] = _level_cost(offsets, best, qcs[best], 1)
            marginal[best] = level1[best]
        elif r < MAX_RADIUS:
            # Levels 2+ are estimated from level 1 (C(16, r + 1) / 16 times its cost): the
            # choice only affects speed, never exactness, and counting 120-1820 buckets would
            # cost more than it saves.
            marginal[best] = level1[best] * _BINOMIAL[r + 1] // CHUNK_BITS
    return True


@njit(inline="always")
def _accept(hashes, quality, alive, row, q, qcs, radii, c, threshold, quality_min):
    """The row's distance if it is reported from chunk ``c``, else -1."""
    if not alive[row] or quality[row] < quality_min:
        return -1
    d = _distance(hashes, row, q)
    if d > threshold:
        return -1
    for j in range(c):  # reported from the lowest chunk whose probe ball holds it
        if radii[j] >= 0 and _chunk_distance(_chunk(hashes[row], j), qcs[j]) <= radii[j]:
            return -1
    return d


@njit(inline="always")
def _emit(out_q, out_row, out_d, n, qi, row, d):
    if n == out_q.shape[0]:
        grown = out_q.shape[0] * 2
        nq = np.empty(grown, dtype=np.int32)
        nr = np.empty(grown, dtype=np.int64)
        nd = np.empty(grown, dtype=np.int16)
        nq[:n] = out_q[:n]
        nr[:n] = out_row[:n]
        nd[:n] = out_d[:n]
        out_q, out_row, out_d = nq, nr, nd
    out_q[n] = qi
    out_row[n] = row
    out_d[n] = d
    return out_q, out_row, out_d, n + 1


@njit(inline="always")
def _scan_bucket(
    offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c, v, threshold, quality_min, qi,
    out,
):  # fmt: skip
    out_q, out_row, out_d, n = out
    w0, w1 = _pre_words(c)
    q0, q1 = q[w0], q[w1]
    for k in range(offsets[c, v], offsets[c, v + 1]):
        # A lower bound from the bucket's own memory: half the hash. Above the threshold, the
        # full distance is too, so the row is rejected without reading it.
        if _popcount(pre[c, k, 0] ^ q0) + _popcount(pre[c, k, 1] ^ q1) > threshold:
            continue
        row = np.int64(ids[c, k])
        d = _accept(hashes, quality, alive, row, q, qcs, radii, c, threshold, quality_min)
        if d >= 0:
            out_q, out_row, out_d, n = _emit(out_q, out_row, out_d, n, qi, row, d)
    return out_q, out_row, out_d, n


@njit(nogil=True, cache=True)
def search(
    queries, threshold, quality_min, hashes, quality, alive, n_base, n_rows, offsets, ids, pre
):
    """Every (query, row, distance) with distance <= threshold among live rows of quality >=
    ``quality_min``: rows ``< n_base`` through the CSR, the delta rows linearly."""
    cap = 1024
    out = (
        np.empty(cap, dtype=np.int32),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int16),
        0,
    )
    qcs = np.empty(CHUNKS, dtype=np.int64)
    radii = np.empty(CHUNKS, dtype=np.int64)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        for c in range(CHUNKS):
            qcs[c] = _chunk(q, c)
        if n_base > 0:
            _radii(offsets, qcs, threshold, radii)
            for c in range(CHUNKS):
                r = radii[c]
                if r < 0:
                    continue
                qc = qcs[c]
                out = _scan_bucket(
                    offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c, qc,
                    threshold, quality_min, qi, out,
                )  # fmt: skip
                if r < 1:
                    continue
                for a in range(CHUNK_BITS):
                    out = _scan_bucket(
                        offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c,
                        qc ^ (1 << a), threshold, quality_min, qi, out,
                    )  # fmt: skip
                if r < 2:
                    continue
                for a in range(CHUNK_BITS):
                    for b in range(a + 1, CHUNK_BITS):
                        out = _scan_bucket(
                            offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c,
                            qc ^ (1 << a) ^ (1 << b), threshold, quality_min, qi, out,
                        )  # fmt: skip
                if r < 3:
                    continue
                for a in range(CHUNK_BITS):
                    for b in range(a + 1, CHUNK_BITS):
                        for e in range(b + 1, CHUNK_BITS):
                            out = _scan_bucket(
                                offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c,
                                qc ^ (1 << a) ^ (1 << b) ^ (1 << e), threshold, quality_min,
                                qi, out,
                            )  # fmt: skip
                if r < 4:
                    continue
                for a in range(CHUNK_BITS):
                    for b in range(a + 1, CHUNK_BITS):
                        for e in range(b + 1, CHUNK_BITS):
                            for f in range(e + 1, CHUNK_BITS):
                                out = _scan_bucket(
                                    offsets, ids, pre, hashes, quality, alive, q, qcs, radii, c,
                                    qc ^ (1 << a) ^ (1 << b) ^ (1 << e) ^ (1 << f), threshold,
                                    quality_min, qi, out,
                                )  # fmt: skip
        out_q, out_row, out_d, n = out
        for row in range(n_base, n_rows):  # the delta, bounded
            if not alive[row] or quality[row] < quality_min:
                continue
            d = _distance(hashes, row, q)
            if d <= threshold:
                out_q, out_row, out_d, n = _emit(out_q, out_row, out_d, n, qi, row, d)
        out = (out_q, out_row, out_d, n)
    out_q, out_row, out_d, n = out
    return out_q[:n].copy(), out_row[:n].copy(), out_d[:n].copy()


@njit(nogil=True, cache=True)
def find_exact(hashes, alive, n_base, n_rows, offsets, ids, q):
    """The live row holding exactly ``q``, or -1: one bucket of chunk 0, then the delta."""
    if n_base > 0:
        v = _chunk(q, 0)
        for k in range(offsets[0, v], offsets[0, v + 1]):
            row = np.int64(ids[0, k])
            if alive[row] and _distance(hashes, row, q) == 0:
                return row
    for row in range(n_base, n_rows):
        if alive[row] and _distance(hashes, row, q) == 0:
            return row
    return -1
