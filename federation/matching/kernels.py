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

The scan rejects most candidates before reading their row (``_probes``, ``_prefilter``): a row
in a bucket of chunk ``c`` at ``l`` bits is reported from ``c`` only if every lower probed chunk
``j`` of ``c``'s half adds at least ``r_j + 1``, so its other half (kept beside the row id) may
differ by at most ``T - l - sum(r_j + 1)``; and a row found in the second half is dropped when one
of the first half's chunks (all in that kept half) claims it.

Rows added after the CSR was built (``n_base <= row < n_rows``, the delta) are scanned linearly;
the delta is bounded (``index.DELTA_MAX``) and merged into the CSR when full. Removed rows are
tombstoned in ``alive`` and skipped.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CHUNKS = 16
CHUNK_BITS = 16
BUCKETS = 1 << CHUNK_BITS
MAX_RADIUS = 4  # per chunk; 16 * (4 + 1) = 80 units, enough for any threshold <= 79
PROBE_COST = 16  # a probe's own cost (about two cache misses), in candidates, when choosing radii
PROBE_AHEAD = 8  # the bucket prefetched while scanning one: this many probes further on
PREFETCH_LINES = 16  # at most this many 64-byte lines of that bucket (64 candidates)
VERIFY_AHEAD = 8  # the row prefetched while verifying a candidate: this many candidates on


def _masks_by_level() -> np.ndarray:
    """Every 16-bit mask of at most ``MAX_RADIUS`` bits, by number of bits: the buckets within
    radius ``r`` of ``v`` are ``v ^ MASKS[:LEVEL_END[r]]``, those at exactly ``r`` bits
    ``v ^ MASKS[LEVEL_END[r - 1]:LEVEL_END[r]]``."""
    masks = [m for m in range(BUCKETS) if m.bit_count() <= MAX_RADIUS]
    return np.array(sorted(masks, key=lambda m: (m.bit_count(), m)), dtype=np.int64)


MASKS = _masks_by_level()
LEVEL_END = np.cumsum([1, 16, 120, 560, 1820]).astype(np.int64)  # C(16, 0 … 4), summed
MAX_PROBES = CHUNKS * int(LEVEL_END[MAX_RADIUS])


@intrinsic
def _prefetch(typingctx, array, index):
    """A hint to the CPU to start loading ``array.flat[index]`` into the cache (LLVM's
    ``llvm.prefetch``, for reading, kept in all levels); ``array`` must be C-contiguous. It never
    faults, whatever the address, and changes no result: it only lets the next buckets' memory
    arrive while the current one is scanned, instead of one cache miss after another."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_pointer)
        builder.call(function, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


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
def _distance4(a0, a1, a2, a3, b0, b1, b2, b3):
    return _popcount(a0 ^ b0) + _popcount(a1 ^ b1) + _popcount(a2 ^ b2) + _popcount(a3 ^ b3)


@njit(inline="always")
def _pre_words(c):
    """The two words kept beside chunk ``c``'s row ids: the half of the hash the chunk is not in."""
    first = 2 if c < 8 else 0
    return first, first + 1


def build_csr(hashes: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR of rows ``0 … n_rows - 1`` per chunk: ``(offsets[16, 65537], ids[16, n_rows],
    pre[16, n_rows, 2])``; ``pre`` holds, beside each row id, the 128 bits of the hash outside
    the chunk's half, so most candidates are rejected from the bucket's own contiguous memory.

    The arrays are allocated by numpy, not inside the kernel: numpy asks Linux for transparent
    huge pages (2 MiB) on large arrays, numba's allocator does not. A search reads a few hundred
    buckets at random places in ``pre`` (256 MiB at 1,000,000 hashes); with 4 KiB pages nearly
    every one of those reads also misses the TLB (measured: searches 1.6-1.8x slower)."""
    offsets = np.zeros((CHUNKS, BUCKETS + 1), dtype=np.uint32)
    ids = np.empty((CHUNKS, n_rows), dtype=np.uint32)
    pre = np.empty((CHUNKS, n_rows, 2), dtype=np.uint64)
    _fill_csr(hashes, n_rows, offsets, ids, pre)
    return offsets, ids, pre


@njit(nogil=True, cache=True)
def _fill_csr(hashes, n_rows, offsets, ids, pre):
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


@njit(inline="always")
def _size(offsets, c, v):
    return np.int64(offsets[c, v + 1]) - np.int64(offsets[c, v])


@njit(inline="always")
def _level_cost(offsets, c, qc, level):
    """Candidates in the buckets at exactly ``level`` bits from ``qc`` in chunk ``c``, plus the
    probes' own cost."""
    start = 0 if level == 0 else LEVEL_END[level - 1]
    total = 0
    for i in range(start, LEVEL_END[level]):
        total += _size(offsets, c, qc ^ MASKS[i]) + PROBE_COST
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
def _packed_radii(radii):
    """The 16 radii in one word, ``radii[c] + 1`` (0-5) in bits ``4c`` … ``4c + 3``: the hot loops
    take it (and the query's words) as scalars. An array passed to a helper inside a loop costs
    numba two atomic reference-count operations per array and call (measured: 60% of a clustered
    search's time went to them)."""
    packed = np.uint64(0)
    for c in range(CHUNKS):
        packed |= np.uint64(radii[c] + 1) << np.uint64(4 * c)
    return packed


@njit(inline="always")
def _in_ball(row_word, query_word, j, packed):
    """Whether chunk ``j`` of a row (``row_word``: the word holding it) lies in that chunk's probe
    ball around the query's (``query_word``, the query's same word)."""
    reach = np.int64((packed >> np.uint64(4 * j)) & np.uint64(15))  # radius + 1; 0: not probed
    if reach == 0:
        return False
    shift = np.uint64(16 * (j & 3))
    x = ((row_word ^ query_word) >> shift) & np.uint64(0xFFFF)
    return np.int64(_popcount(x)) < reach


@njit(inline="always")
def _accept(h0, h1, h2, h3, q0, q1, q2, q3, packed, c, threshold):
    """The distance of the row ``h0 … h3`` if it is reported from chunk ``c``, else -1."""
    d = np.int64(_distance4(h0, h1, h2, h3, q0, q1, q2, q3))
    if d > threshold:
        return -1
    for j in range(c):  # reported from the lowest chunk whose probe ball holds it
        w = j >> 2
        if w == 0:
            held = _in_ball(h0, q0, j, packed)
        elif w == 1:
            held = _in_ball(h1, q1, j, packed)
        elif w == 2:
            held = _in_ball(h2, q2, j, packed)
        else:
            held = _in_ball(h3, q3, j, packed)
        if held:
            return -1
    return d


@njit(inline="always")
def _room(out_q, out_row, out_d, n, need):
    """The output arrays, grown (doubling) to hold at least ``need`` results. Called once per
    query before its loops, never inside them: an array reassigned in a hot loop costs numba
    reference counting on every iteration (measured: verification 2x slower)."""
    if need <= out_q.shape[0]:
        return out_q, out_row, out_d
    grown = max(need, 2 * out_q.shape[0])
    nq = np.empty(grown, dtype=np.int32)
    nr = np.empty(grown, dtype=np.int64)
    nd = np.empty(grown, dtype=np.int16)
    nq[:n] = out_q[:n]
    nr[:n] = out_row[:n]
    nd[:n] = out_d[:n]
    return nq, nr, nd


@njit(inline="always")
def _probes(offsets, qcs, radii, threshold, probe_c, probe_lo, probe_hi, probe_budget):
    """Lists the non-empty buckets to scan, ``(chunk, first, end, budget)`` in ``ids``/``pre``;
    returns how many, and how many candidates they hold.

    A row in a bucket of chunk ``c`` at ``level`` bits from the query's chunk is reported from
    ``c`` only if it lies outside the probe balls of every lower chunk, so each lower chunk ``j``
    of the same half adds at least ``radii[j] + 1`` to its distance. ``budget`` is what is left of
    the threshold for the other half after those and ``level``: a row whose other half is
    farther than that would be rejected by ``_accept`` anyway, and a bucket whose budget is
    negative need not be scanned at all."""
    m = 0
    candidates = 0
    for c in range(CHUNKS):
        if radii[c] < 0:
            continue
        qc = qcs[c]
        spent = 0
        for j in range(c & ~7, c):  # the lower chunks of c's half
            if radii[j] >= 0:
                spent += radii[j] + 1
        level = 0
        for i in range(LEVEL_END[radii[c]]):
            if i == LEVEL_END[level]:
                level += 1
            budget = threshold - spent - level
            if budget < 0:
                break
            v = qc ^ MASKS[i]
            lo = np.int64(offsets[c, v])
            hi = np.int64(offsets[c, v + 1])
            if hi > lo:
                probe_c[m] = c
                probe_lo[m] = lo
                probe_hi[m] = hi
                probe_budget[m] = budget
                candidates += hi - lo
                m += 1
    return m, candidates


@njit(inline="always")
def _claimed_below(word0, word1, q0, q1, packed):
    """Whether a row whose first half (chunks 0-7) is ``word0, word1`` lies in the probe ball of
    one of those chunks (``q0, q1``: the query's first half): such a row is reported from there,
    never from a chunk of the second half."""
    for j in range(8):
        held = _in_ball(word0, q0, j, packed) if j < 4 else _in_ball(word1, q1, j, packed)
        if held:
            return True
    return False


@njit(nogil=True, cache=True)
def _prefilter(pre, ids, q, packed, probe_c, probe_lo, probe_hi, probe_budget, m, pass_row, pass_c):
    """Pass 1: scan the listed buckets, prefetching ``PROBE_AHEAD`` buckets ahead (the first
    ``PREFETCH_LINES`` lines of each), and keep the rows whose prefilter half is within the
    bucket's budget (``_probes``) and, for a chunk of the second half, which no chunk of the first
    half claims (``_claimed_below``, read from the same memory). Every row dropped here
    ``_accept`` would reject, so almost every candidate is rejected from the bucket's own
    contiguous memory, and the few rows kept are read in pass 2, where their loads can overlap
    (here each would stall the scan). A function of its own, called once per query, whose arrays
    are never reassigned, and inside which only scalars go to helpers: so its loops carry no
    reference counting (``_packed_radii``)."""
    n = 0
    q0, q1 = q[0], q[1]
    width = pre.shape[1]
    for p in range(m):
        if p + PROBE_AHEAD < m:
            ahead = p + PROBE_AHEAD
            first = (probe_c[ahead] * width + probe_lo[ahead]) * 2
            end = (probe_c[ahead] * width + probe_hi[ahead]) * 2
            line = 0
            while line < PREFETCH_LINES and first + 8 * line < end:
                _prefetch(pre, first + 8 * line)
                line += 1
        c = probe_c[p]
        budget = probe_budget[p]
        w0, w1 = _pre_words(c)
        p0, p1 = q[w0], q[w1]
        for k in range(probe_lo[p], probe_hi[p]):
            a = pre[c, k, 0]
            b = pre[c, k, 1]
            if _popcount(a ^ p0) + _popcount(b ^ p1) <= budget:
                if c >= 8 and _claimed_below(a, b, q0, q1, packed):
                    continue
                pass_row[n] = ids[c, k]
                pass_c[n] = c
                n += 1
    return n


@njit(nogil=True, cache=True)
def _verify(
    hashes, quality, alive, q, qi, packed, threshold, quality_min,
    pass_row, pass_c, kept, out_q, out_row, out_d, n,
):  # fmt: skip
    """Pass 2: verify the rows kept by pass 1 on their full hash, prefetching ``VERIFY_AHEAD``
    rows ahead; append those reported to ``out_*`` from ``n``; returns the new count. A function
    of its own for the same reason as ``_prefilter``."""
    q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
    for i in range(kept):
        if i + VERIFY_AHEAD < kept:
            _prefetch(hashes, pass_row[i + VERIFY_AHEAD] * 4)
        row = pass_row[i]
        d = _accept(
            hashes[row, 0], hashes[row, 1], hashes[row, 2], hashes[row, 3],
            q0, q1, q2, q3, packed, pass_c[i], threshold,
        )  # fmt: skip
        if d >= 0 and alive[row] and quality[row] >= quality_min:
            out_q[n] = qi
            out_row[n] = row
            out_d[n] = d
            n += 1
    return n


@njit(nogil=True, cache=True)
def search(
    queries, threshold, quality_min, hashes, quality, alive, n_base, n_rows, offsets, ids, pre
):
    """Every (query, row, distance) with distance <= threshold among live rows of quality >=
    ``quality_min``: rows ``< n_base`` through the CSR, the delta rows linearly.

    Per query: choose the radii, list the buckets (``_probes``), prefilter them (pass 1), then
    verify the rows kept on their full hash, prefetching ``VERIFY_AHEAD`` rows ahead (pass 2)."""
    cap = 1024
    out_q = np.empty(cap, dtype=np.int32)
    out_row = np.empty(cap, dtype=np.int64)
    out_d = np.empty(cap, dtype=np.int16)
    n = 0
    qcs = np.empty(CHUNKS, dtype=np.int64)
    radii = np.empty(CHUNKS, dtype=np.int64)
    probe_c = np.empty(MAX_PROBES, dtype=np.int64)
    probe_lo = np.empty(MAX_PROBES, dtype=np.int64)
    probe_hi = np.empty(MAX_PROBES, dtype=np.int64)
    probe_budget = np.empty(MAX_PROBES, dtype=np.int64)
    pass_row = np.empty(cap, dtype=np.int64)
    pass_c = np.empty(cap, dtype=np.int64)
    for qi in range(queries.shape[0]):
        q = queries[qi]
        q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
        for c in range(CHUNKS):
            qcs[c] = _chunk(q, c)
        if n_base > 0:
            _radii(offsets, qcs, threshold, radii)
            m, candidates = _probes(
                offsets, qcs, radii, threshold, probe_c, probe_lo, probe_hi, probe_budget
            )
            if candidates > pass_row.shape[0]:  # room for every candidate: no check per row
                pass_row = np.empty(candidates, dtype=np.int64)
                pass_c = np.empty(candidates, dtype=np.int64)
            packed = _packed_radii(radii)
            kept = _prefilter(
                pre, ids, q, packed, probe_c, probe_lo, probe_hi, probe_budget, m,
                pass_row, pass_c,
            )  # fmt: skip
            out_q, out_row, out_d = _room(out_q, out_row, out_d, n, n + kept)
            n = _verify(
                hashes, quality, alive, q, qi, packed, threshold, quality_min,
                pass_row, pass_c, kept, out_q, out_row, out_d, n,
            )  # fmt: skip
        out_q, out_row, out_d = _room(out_q, out_row, out_d, n, n + n_rows - n_base)
        for row in range(n_base, n_rows):  # the delta, bounded
            if not alive[row] or quality[row] < quality_min:
                continue
            d = _distance4(hashes[row, 0], hashes[row, 1], hashes[row, 2], hashes[row, 3],
                           q0, q1, q2, q3)  # fmt: skip
            if d <= threshold:
                out_q[n] = qi
                out_row[n] = row
                out_d[n] = d
                n += 1
    return out_q[:n].copy(), out_row[:n].copy(), out_d[:n].copy()


# Distances a result may have (0 … MAX_THRESHOLD of the index, 63), counted per query.
MAX_DISTANCES = 64
# A run of results at one distance up to this long is sorted by insertion, a longer one by numpy.
INSERTION_MAX = 32
# Below this many results per row of the index, ``answer_order`` finds the distinct rows by a
# sort of the results; from it on, by marking them in an array as long as the index, whose one
# scan then lists them in row order.
MARKED_DISTINCT = 1 / 32


@njit(inline="always")
def _sort_by_rank(ranks, order, a, b):
    """Sort ``ranks[a:b]`` (distinct), and ``order[a:b]`` with it."""
    if b - a <= INSERTION_MAX:
        for k in range(a + 1, b):
            r, o = ranks[k], order[k]
            m = k
            while m > a and ranks[m - 1] > r:
                ranks[m] = ranks[m - 1]
                order[m] = order[m - 1]
                m -= 1
            ranks[m] = r
            order[m] = o
    elif b > a:
        part = np.argsort(ranks[a:b])
        order[a:b] = order[a:b][part]
        ranks[a:b] = ranks[a:b][part]


@njit(nogil=True, cache=True)
def answer_order(qi, rows, dist, rank, n_queries, n_rows):
    """``search``'s results (grouped by query, as it returns them) in the answer's order: per
    query by distance, then by ``rank[row]`` (the row's rank by value). Returns the bounds of each
    query's results (``n_queries + 1``), the distinct rows found in row order, and per result in
    the answer's order its row's position among them and its distance: what ``numpy.unique`` and
    one ``argsort`` of (query, distance, rank) give, without a sort of the whole batch: each
    query's results are counted out by distance, then each distance's few sorted by rank."""
    n = qi.shape[0]
    bounds = np.zeros(n_queries + 1, dtype=np.int64)
    for i in range(n):
        bounds[qi[i] + 1] += 1
    for q in range(n_queries):
        bounds[q + 1] += bounds[q]
    order = np.empty(n, dtype=np.int64)
    ranks = np.empty(n, dtype=np.int64)
    first = np.empty(MAX_DISTANCES + 1, dtype=np.int64)  # each distance's first place
    free = np.empty(MAX_DISTANCES + 1, dtype=np.int64)  # and its next free one
    for q in range(n_queries):
        lo, hi = bounds[q], bounds[q + 1]
        # by distance (counted), then by rank within a distance: a few results each, mostly
        first[:] = 0
        for j in range(lo, hi):
            first[dist[j] + 1] += 1
        first[0] = lo
        for d in range(MAX_DISTANCES):
            first[d + 1] += first[d]
        free[:] = first
        for j in range(lo, hi):
            k = free[dist[j]]
            free[dist[j]] = k + 1
            ranks[k] = rank[rows[j]]
            order[k] = j
        for d in range(MAX_DISTANCES):
            _sort_by_rank(ranks, order, first[d], first[d + 1])
    which = np.empty(n, dtype=np.int64)
    if n < n_rows * MARKED_DISTINCT:
        distinct = np.unique(rows)
        for j in range(n):
            which[j] = np.searchsorted(distinct, rows[order[j]])
    else:
        position = np.zeros(n_rows, dtype=np.int32)
        found = 0
        for i in range(n):
            if not position[rows[i]]:
                position[rows[i]] = 1
                found += 1
        distinct = np.empty(found, dtype=np.int64)
        k = 0
        for row in range(n_rows):
            if position[row]:
                distinct[k] = row
                position[row] = k
                k += 1
        for j in range(n):
            which[j] = position[rows[order[j]]]
    distances = np.empty(n, dtype=dist.dtype)
    for j in range(n):
        distances[j] = dist[order[j]]
    return bounds, distinct, which, distances


@njit
def _same(hashes, row, q):
    """Whether row ``row`` holds exactly ``q`` (a call per row: ``find_exact`` scans one bucket)."""
    return (
        hashes[row, 0] == q[0]
        and hashes[row, 1] == q[1]
        and hashes[row, 2] == q[2]
        and hashes[row, 3] == q[3]
    )


@njit(nogil=True, cache=True)
def find_exact(hashes, alive, n_base, n_rows, offsets, ids, q):
    """The live row holding exactly ``q``, or -1: one bucket of chunk 0, then the delta."""
    if n_base > 0:
        v = _chunk(q, 0)
        for k in range(offsets[0, v], offsets[0, v + 1]):
            row = np.int64(ids[0, k])
            if alive[row] and _same(hashes, row, q):
                return row
    for row in range(n_base, n_rows):
        if alive[row] and _same(hashes, row, q):
            return row
    return -1
