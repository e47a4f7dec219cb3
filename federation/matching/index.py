"""The in-memory match index: PDQ by Hamming distance (multi-index hashing, ``kernels.py``),
MD5 and SHA-256 by exact lookup.

Concurrency: one writer at a time (``_write_lock``); readers take no lock. What a search reads is
one immutable ``_View`` (arrays, row counts, the CSR) taken at its start. A writer appends rows
past the view's ``n_rows`` (invisible to it), then publishes a new view; it flips a row's
``alive`` flag (one byte) or its quality in place. A search that started before an update
therefore sees the index either without or with it, never a torn row. When the delta is full, a
background thread builds the new CSR from a snapshot of the rows (outside the lock), then, under
the lock, copies the flags, quality and state as they are by then and the rows appended since, and
publishes the new arrays (``_merge_in_background``); searches holding the old view finish on the
old arrays. Only when the arrays are full does an add merge synchronously (rare: ``GROWTH``).

Memory per PDQ hash: 32 bytes of hash, 2 of quality, 1 of alive flag, 1 of state, 4 of payload,
8 of where the bytes the owner keeps beside the row are (``keep``; the match store: the entry's
rendering) and 4 of its rank by value (times the growth headroom ``GROWTH``), and in the CSR, per
chunk, a row id (4 bytes) and the 16 bytes of the hash's other half for the prefilter: 16 x 20 =
320 bytes; plus a fixed 4 MiB of offsets. About 390 bytes in all, plus the kept bytes (``Arena``);
``memory_bytes()`` reports the arrays actually held. An index made with ``for_answers=False`` (the
video frame index, which only searches) holds no kept bytes and no rank: 15 bytes a row less.

What is kept beside a row (a rendering and its quality) is in an append-only ``kept.Arena``
shared by the views of one generation of arrays, located by one int64 per row (``kept``); forgetting
everything starts a new arena and a new ``kept`` array in a new view (``kept.py`` says why a
reader needs no lock).
"""

import threading
from dataclasses import dataclass, replace

import numpy as np

from federation.matching.kept import KEPT_NONE, Arena, KeptSpans, fitting, spans_of


def _kernels():
    """The compiled kernels, imported on first use: numba and its LLVM take about 85 MiB of a
    process, which a web worker that never serves a match should not pay."""
    from federation.matching import kernels

    return kernels


PDQ_HEX = 64
MD5_HEX = 32
SHA256_HEX = 64
HEX_LENGTHS = {"pdq": PDQ_HEX, "md5": MD5_HEX, "sha256": SHA256_HEX}
MAX_THRESHOLD = 63

STATE_CODES = {"vetted": 1, "disputed": 2}
STATE_NAMES = {code: name for name, code in STATE_CODES.items()}
NO_QUALITY = -1  # stored for an entry with no quality: never meets a quality floor

DELTA_MAX = 8192  # rows added since the CSR was built, scanned linearly, before a merge
GROWTH = 1.25


def pdq_words(values: list[str]) -> np.ndarray:
    """Hex PDQ hashes (64 lowercase hex digits, already checked) as an ``(n, 4)`` uint64 array."""
    if not values:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 4)


def words_hex(words: np.ndarray) -> str:
    return words.astype(">u8").tobytes().hex()


@dataclass(frozen=True)
class _View:
    hashes: np.ndarray  # (capacity, 4) uint64
    quality: np.ndarray  # (capacity,) int16
    state: np.ndarray  # (capacity,) uint8
    alive: np.ndarray  # (capacity,) uint8
    payload: np.ndarray  # (capacity,) int32: the owner's key for the row (video frames), or -1
    kept: np.ndarray  # (capacity,) int64: where the row's kept bytes are (``keep``), or KEPT_NONE
    rank: np.ndarray  # (capacity,) int32: rank of the hash by value among rows 0 … n_base - 1
    n_base: int  # rows 0 … n_base - 1 are in the CSR
    n_rows: int
    offsets: np.ndarray
    ids: np.ndarray
    pre: np.ndarray
    arena: "Arena"  # the bytes ``kept`` points into


@dataclass(frozen=True)
class PdqMatch:
    query: int  # index of the query in the batch
    value: str
    distance: int
    state: str
    quality: int | None


def _empty_view() -> _View:
    offsets, ids, pre = _kernels().build_csr(np.zeros((0, 4), dtype=np.uint64), 0)
    return _View(
        hashes=np.zeros((0, 4), dtype=np.uint64),
        quality=np.zeros(0, dtype=np.int16),
        state=np.zeros(0, dtype=np.uint8),
        alive=np.zeros(0, dtype=np.uint8),
        payload=np.zeros(0, dtype=np.int32),
        kept=np.zeros(0, dtype=np.int64),
        rank=np.zeros(0, dtype=np.int32),
        n_base=0,
        n_rows=0,
        offsets=offsets,
        ids=ids,
        pre=pre,
        arena=Arena(),
    )


# The kept positions and ranks of an index made without them (``for_answers=False``).
_NO_KEPT = np.zeros(0, dtype=np.int64)
_NO_RANK = np.zeros(0, dtype=np.int32)


class PdqIndex:
    """Exact PDQ range search with add and remove in O(bucket + DELTA_MAX)."""

    def __init__(self, *, for_answers: bool = True) -> None:
        """``for_answers``: the rows carry what ``search_sorted``, ``keep`` and ``kept_spans``
        need (each row's rank by value and where its kept bytes are); without it, ``search_words``
        and the exact lookups only, in 15 bytes a row less."""
        self._for_answers = for_answers
        self._write_lock = threading.Lock()
        self._view = _empty_view()
        self._live = 0
        self._generation = 0  # raised by every publish of new arrays; a stale merge is dropped
        self._merger: threading.Thread | None = None

    # --- building and updating ----------------------------------------------------------------

    def build(
        self,
        words: np.ndarray,
        quality: np.ndarray,
        state: np.ndarray,
        payload: np.ndarray | None = None,
    ) -> None:
        """Replace the contents with these rows (duplicates must already be removed).
        ``payload`` is an int32 per row that the index keeps with it and never reads (the video
        frame index keys its postings with it); -1 when not given."""
        n = len(words)
        capacity = max(int(n * GROWTH), 1024)
        hashes = np.zeros((capacity, 4), dtype=np.uint64)
        hashes[:n] = words
        q = np.full(capacity, NO_QUALITY, dtype=np.int16)
        q[:n] = quality
        s = np.zeros(capacity, dtype=np.uint8)
        s[:n] = state
        alive = np.zeros(capacity, dtype=np.uint8)
        alive[:n] = 1
        keys = np.full(capacity, -1, dtype=np.int32)
        if payload is not None:
            keys[:n] = payload
        kept, rank = self._kept_and_ranks(hashes, n, capacity)
        offsets, ids, pre = _kernels().build_csr(hashes, n)
        with self._write_lock:
            self._view = _View(
                hashes, q, s, alive, keys, kept, rank, n, n, offsets, ids, pre, Arena()
            )
            self._live = n
            self._generation += 1

    def upsert(self, value: str, *, state: str, quality: int | None, payload: int = -1) -> int:
        """Add the hash, or update its state and quality if present; returns the row's payload
        (the one it already had if present: a payload is set once, when the row is added)."""
        return self.upsert_words(
            pdq_words([value])[0], state=state, quality=quality, payload=payload
        )

    def upsert_words(
        self, words: np.ndarray, *, state: str, quality: int | None, payload: int = -1
    ) -> int:
        code = STATE_CODES[state]
        qvalue = NO_QUALITY if quality is None else int(quality)
        with self._write_lock:
            view = self._view
            row = self._find(view, words)
            if row >= 0:
                view.quality[row] = qvalue
                view.state[row] = code
                if self._for_answers:
                    view.kept[row] = KEPT_NONE
                return int(view.payload[row])
            if view.n_rows == len(view.hashes):  # full: merge now (rare: GROWTH headroom)
                view = self._merge(view)
            elif view.n_rows - view.n_base >= DELTA_MAX:
                self._start_merge(view)
            row = view.n_rows
            view.hashes[row] = words
            view.quality[row] = qvalue
            view.state[row] = code
            view.alive[row] = 1
            view.payload[row] = payload
            if self._for_answers:
                view.kept[row] = KEPT_NONE
            self._view = _View(
                view.hashes,
                view.quality,
                view.state,
                view.alive,
                view.payload,
                view.kept,
                view.rank,
                view.n_base,
                row + 1,
                view.offsets,
                view.ids,
                view.pre,
                view.arena,
            )
            self._live += 1
            return payload

    def remove(self, value: str) -> bool:
        return self.remove_words(pdq_words([value])[0])

    def remove_words(self, words: np.ndarray) -> bool:
        with self._write_lock:
            view = self._view
            row = self._find(view, words)
            if row < 0:
                return False
            view.alive[row] = 0
            if self._for_answers:
                view.kept[row] = KEPT_NONE
            self._live -= 1
            return True

    def payload_of(self, words: np.ndarray) -> int:
        """The payload of the live row holding this hash (``(4,)`` uint64 words), or -1."""
        view = self._view
        row = self._find(view, words)
        return int(view.payload[row]) if row >= 0 else -1

    def _find(self, view: _View, words: np.ndarray) -> int:
        return int(
            _kernels().find_exact(
                view.hashes, view.alive, view.n_base, view.n_rows, view.offsets, view.ids, words
            )
        )

    def _start_merge(self, view: _View) -> None:
        """Merge the delta into the CSR in a background thread; meanwhile adds keep going to the
        delta (beyond ``DELTA_MAX``) and searches keep using the current arrays."""
        if self._merger is not None and self._merger.is_alive():
            return
        self._merger = threading.Thread(
            target=self._merge_in_background,
            args=(view, self._generation),
            name="pdq-index-merge",
            daemon=True,
        )
        self._merger.start()

    def _merge_in_background(self, view: _View, generation: int) -> None:
        m = view.n_rows
        with self._write_lock:
            # A copy taken under the lock: a concurrent remove writes ``alive`` in place, and
            # numpy refuses (RuntimeError) an array whose non-zero count changes while it scans.
            alive = view.alive[:m].copy()
        keep = np.flatnonzero(alive)  # a row dead now stays dead (a re-add is a new row)
        n = len(keep)
        words = view.hashes[keep]
        offsets, ids, pre = _kernels().build_csr(words, n)  # the O(n) part, outside the lock
        ranked = _ranks(words, n) if self._for_answers else None
        with self._write_lock:
            if self._generation != generation:
                return  # the arrays were replaced meanwhile (a build, or a merge when full)
            current = self._view  # the same arrays as ``view``, with rows appended since
            tail = current.n_rows - m
            capacity = max(int((n + tail) * GROWTH) + DELTA_MAX, 1024)
            hashes = np.zeros((capacity, 4), dtype=np.uint64)
            hashes[:n] = words
            hashes[n : n + tail] = current.hashes[m : current.n_rows]
            # Flags, quality and state as they are now: removals and updates made during the
            # merge carry over (a row removed meanwhile stays in the CSR as a tombstone).
            arrays = []
            columns = [
                (current.quality, NO_QUALITY),
                (current.state, 0),
                (current.alive, 0),
                (current.payload, -1),
            ]
            if ranked is not None:
                columns.append((current.kept, KEPT_NONE))
            for column, fill in columns:
                out = np.full(capacity, fill, dtype=column.dtype)
                out[:n] = column[keep]
                out[n : n + tail] = column[m : current.n_rows]
                arrays.append(out)
            if ranked is None:
                arrays.append(_NO_KEPT)
                rank = _NO_RANK
            else:
                rank = np.full(capacity, -1, dtype=np.int32)
                rank[:n] = ranked
            self._view = _View(hashes, *arrays, rank, n, n + tail, offsets, ids, pre, current.arena)
            self._generation += 1

    def wait_for_merge(self) -> None:
        merger = self._merger
        if merger is not None:
            merger.join()

    def _merge(self, view: _View) -> _View:
        """Compaction: live rows only, the delta into the CSR, room to grow. O(n), once per
        ``DELTA_MAX`` adds (or when the arrays are full); published as a new view."""
        keep = np.flatnonzero(view.alive[: view.n_rows])
        n = len(keep)
        capacity = max(int(n * GROWTH) + DELTA_MAX, 1024)
        hashes = np.zeros((capacity, 4), dtype=np.uint64)
        hashes[:n] = view.hashes[keep]
        q = np.full(capacity, NO_QUALITY, dtype=np.int16)
        q[:n] = view.quality[keep]
        s = np.zeros(capacity, dtype=np.uint8)
        s[:n] = view.state[keep]
        alive = np.zeros(capacity, dtype=np.uint8)
        alive[:n] = 1
        keys = np.full(capacity, -1, dtype=np.int32)
        keys[:n] = view.payload[keep]
        kept, rank = self._kept_and_ranks(hashes, n, capacity)
        if self._for_answers:
            kept[:n] = view.kept[keep]
        offsets, ids, pre = _kernels().build_csr(hashes, n)
        merged = _View(hashes, q, s, alive, keys, kept, rank, n, n, offsets, ids, pre, view.arena)
        self._view = merged
        self._generation += 1
        return merged

    def _kept_and_ranks(
        self, hashes: np.ndarray, n: int, capacity: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """New arrays of ``capacity`` rows' kept positions (none kept) and the first ``n`` rows'
        ranks by value; empty ones for an index made without them."""
        if not self._for_answers:
            return _NO_KEPT, _NO_RANK
        return np.full(capacity, KEPT_NONE, dtype=np.int64), _ranks(hashes[:n], capacity)

    def warm_up(self) -> None:
        """Load every compiled kernel now (from numba's cache, or compiling it), so that the
        first request or change does not pay for it."""
        probe = np.zeros((1, 4), dtype=np.uint64)
        if self._for_answers:
            self.search_sorted(probe, threshold=0)
        else:
            self.search_words(probe, threshold=0)
        self._find(self._view, probe[0])

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    def search_words(
        self, queries: np.ndarray, *, threshold: int, quality_min: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _View]:
        """Raw results: arrays (query index, row, distance) and the view they refer to."""
        if not 0 <= threshold <= MAX_THRESHOLD:
            raise ValueError(f"threshold must be 0-{MAX_THRESHOLD}")
        view = self._view
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, 4)
        floor = NO_QUALITY if quality_min is None else int(quality_min)
        qi, rows, dist = _kernels().search(
            queries,
            threshold,
            floor,
            view.hashes,
            view.quality,
            view.alive,
            view.n_base,
            view.n_rows,
            view.offsets,
            view.ids,
            view.pre,
        )
        return qi, rows, dist, view

    def search_sorted(
        self, queries: np.ndarray, *, threshold: int, quality_min: int | None = None
    ) -> "SortedResults":
        """The results of a batch in the answer's order (``SortedResults``): per query by
        distance, then value (hex order: the order of the big-endian words, most significant
        first), each distinct row found once, with no object per result: a clustered batch has a
        hundred results per query. Each row's rank by value is kept beside it (computed when the
        CSR is built), so the batch needs no sort as a whole: each query's results are counted out
        by distance, and each distance's few sorted by rank (``kernels.answer_order``). Rows added
        since the CSR was built have no rank: when some were found, the distinct rows found are
        ranked here and numpy sorts the batch by query, distance and rank packed."""
        if not self._for_answers:
            raise TypeError("this index was made without ranks (for_answers=False)")
        if len(queries) >= 1 << 23:
            raise ValueError("at most 8,388,607 queries in one sorted search")
        qi, rows, dist, view = self.search_words(
            queries, threshold=threshold, quality_min=quality_min
        )
        if not len(rows) or int(rows.max()) < view.n_base:
            bounds, distinct, which, distances = _kernels().answer_order(
                qi, rows, dist, view.rank, len(queries), view.n_rows
            )
            return SortedResults(bounds, distinct, which, distances, view)
        distinct, inverse = np.unique(rows, return_inverse=True)
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[_value_order(view.hashes[distinct])] = np.arange(len(distinct), dtype=np.int64)
        # rank < 2**32 (rows), distance < 2**6 (MAX_THRESHOLD), query < 2**23
        key = (qi.astype(np.int64) << 40) | (dist.astype(np.int64) << 32) | rank[inverse]
        order = np.argsort(key)  # keys are distinct: a hash is found once per query
        bounds = np.searchsorted(qi[order], np.arange(len(queries) + 1))
        return SortedResults(bounds, distinct, inverse[order], dist[order], view)

    def kept_spans(self, view: _View, rows: np.ndarray) -> KeptSpans:
        """Where the bytes kept for these rows of ``view`` are (``keep``): a row kept nowhere, or
        kept after its arena grew past the buffer taken here, is not ``present``."""
        # The buffer first: a row's ``kept`` read after it points into it or past its end. numpy
        # may release the GIL while it gathers (here) and scatters (``keep``), so the two can run
        # at once. A row's int64 is read or written whole (aligned), and ``keep`` stores it only
        # after the arena's bytes, in an earlier operation: the GIL's release at the start of the
        # scatter orders the stores, and the layout reads the bytes through the value it found.
        buffer = view.arena.buffer
        return spans_of(buffer, view.kept[rows])

    def keep(self, view: _View, rows: np.ndarray, kept: list[tuple[bytes, int | None]]) -> bool:
        """Keep a byte string and a number (or None) beside each of these rows of ``view`` (the
        match store: the entry's rendering and its quality), until the row is updated or
        removed, which drops it; one that does not fit (``KEPT_SIZE_MAX``, ``KEPT_NUMBER_MAX``)
        is not kept. Only while ``view``'s rows are numbered as the current view's (a merge that
        publishes new arrays copies what is kept by then; after ``forget_kept`` they go to the
        new arena); returns whether they were."""
        if not self._for_answers:
            raise TypeError("this index was made without kept bytes (for_answers=False)")
        fits = [fitting(data, number) for data, number in kept]
        if not all(fits):
            rows = rows[np.asarray(fits, dtype=bool)]
            kept = [item for item, fit in zip(kept, fits, strict=True) if fit]
        with self._write_lock:
            current = self._view
            if current.hashes is not view.hashes:
                return False
            current.kept[rows] = current.arena.append(kept)
            return True

    def forget_kept(self) -> None:
        """Drop everything kept beside the rows: a new arena and a new ``kept``, in a new view
        (searches under way read the old ones, which nothing writes again)."""
        with self._write_lock:
            view = self._view
            self._view = replace(
                view, kept=np.full(len(view.kept), KEPT_NONE, dtype=np.int64), arena=Arena()
            )

    def search(
        self, values: list[str], *, threshold: int, quality_min: int | None = None
    ) -> list[PdqMatch]:
        qi, rows, dist, view = self.search_words(
            pdq_words(values), threshold=threshold, quality_min=quality_min
        )
        matches = []
        for query, row, distance in zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True):
            quality = int(view.quality[row])
            matches.append(
                PdqMatch(
                    query=query,
                    value=words_hex(view.hashes[row]),
                    distance=distance,
                    state=STATE_NAMES.get(int(view.state[row]), "vetted"),
                    quality=None if quality == NO_QUALITY else quality,
                )
            )
        return matches

    def memory_bytes(self) -> int:
        view = self._view
        return sum(
            a.nbytes
            for a in (
                view.hashes,
                view.quality,
                view.state,
                view.alive,
                view.payload,
                view.kept,
                view.rank,
                view.offsets,
                view.ids,
                view.pre,
                view.arena.buffer,
            )
        )


@dataclass(frozen=True)
class SortedResults:
    """``PdqIndex.search_sorted``'s answer: query ``i``'s results are ``which[bounds[i]:
    bounds[i + 1]]`` (positions in ``rows``, the distinct rows found, in row order) with their
    ``distances``, in the answer's order; the rows are ``view``'s."""

    bounds: np.ndarray
    rows: np.ndarray
    which: np.ndarray
    distances: np.ndarray
    view: _View

    def values(self, positions: np.ndarray | None = None) -> list[str]:
        """The hex values of the distinct rows (or of those at ``positions``), in that order."""
        rows = self.rows if positions is None else self.rows[positions]
        text = self.view.hashes[rows].astype(">u8").tobytes().hex()
        return [text[i : i + PDQ_HEX] for i in range(0, len(text), PDQ_HEX)]


def _ranks(words: np.ndarray, capacity: int) -> np.ndarray:
    """Each of these distinct hashes' rank by value, in an int32 array of ``capacity`` (-1
    past them)."""
    rank = np.full(capacity, -1, dtype=np.int32)
    rank[_value_order(words)] = np.arange(len(words), dtype=np.int32)
    return rank


def _value_order(words: np.ndarray) -> np.ndarray:
    """The order of these distinct hashes (``(n, 4)`` words) by value: one sort of the first
    word, then a four-key sort of only the runs that share a first word (on clustered data about
    half the rows, near-duplicates differing in the other words)."""
    order = np.argsort(words[:, 0])
    first = words[order, 0]
    equal = first[1:] == first[:-1]
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] = equal
    tied[:-1] |= equal
    positions = np.flatnonzero(tied)
    if len(positions):
        rows = order[positions]
        tied_words = words[rows]
        heads = first[positions]
        run = np.cumsum(np.concatenate(([True], heads[1:] != heads[:-1])))
        within = np.lexsort((tied_words[:, 3], tied_words[:, 2], tied_words[:, 1], run))
        order[positions] = rows[within]
    return order


class ExactIndex:
    """MD5 or SHA-256: a dict from the value to its state code. A dict assignment or deletion
    is atomic under the GIL, so readers need no lock."""

    def __init__(self) -> None:
        self._states: dict[str, int] = {}

    def build(self, values: list[str], states: list[str]) -> None:
        self._states = {v: STATE_CODES[s] for v, s in zip(values, states, strict=True)}

    def upsert(self, value: str, *, state: str) -> None:
        self._states[value] = STATE_CODES[state]

    def remove(self, value: str) -> bool:
        return self._states.pop(value, None) is not None

    def get(self, value: str) -> str | None:
        code = self._states.get(value)
        return None if code is None else STATE_NAMES[code]

    def __len__(self) -> int:
        return len(self._states)


def brute_force(
    hashes: np.ndarray, queries: np.ndarray, threshold: int
) -> list[set[tuple[int, int]]]:
    """The oracle: for each query, the set of (row, distance) within ``threshold``, by numpy
    popcount over every row."""
    results = []
    for q in np.asarray(queries, dtype=np.uint64).reshape(-1, 4):
        d = np.bitwise_count(hashes ^ q).sum(axis=1)
        rows = np.flatnonzero(d <= threshold)
        results.append({(int(r), int(d[r])) for r in rows})
    return results
