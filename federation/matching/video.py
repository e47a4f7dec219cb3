"""Exact video matching (docs/video.md, "Matching"): every distinct frame PDQ of every shared vpdq
entry is one row of a ``PdqIndex`` (the exact PDQ index of photos, a second instance), with
**postings** to the videos that hold it.

The rules are python-threatexchange's (``vpdq_util``, ``VPDQIndex``), made exact and explicit:

- a video's **distinct frames** are its distinct PDQ hashes; a distinct frame's quality is the
  highest quality among the frames with that hash, its timestamp that of the first frame with it;
- frames whose quality is below the floor (``quality_min``, default 50) are dropped (a distinct
  frame is kept when its quality is at least the floor), on both sides;
- a query frame matches a shared frame at Hamming distance ``<= threshold`` (default 31);
- **query %** = matched distinct query frames / the query's distinct frames kept, **compared %** =
  matched distinct frames of the shared video / its distinct frames kept; a video is reported when
  ``query % >= query_min`` and ``compared % >= compared_min`` (integers, compared exactly as
  ``matched * 100 >= min * total``).

Layout (memory per shared frame, see ``memory_bytes``): the ``PdqIndex`` row (hash, CSR,
prefilter) carries a **group** number in its payload; a group is one distinct frame hash shared by
one or more videos, ``head[group]`` the first of its postings, chained by ``post_next``. A posting
is one distinct frame of one video: its video slot, quality and timestamp (13 bytes). A video's
postings are contiguous (``video_start`` … ``video_end``); removing a video finds its groups by
looking its frame hashes up in the ``PdqIndex``.

Concurrency: one lock guards the postings and the video table, taken by writers (the match
store's change applier) and by readers while they walk postings; the frame search itself runs
outside it on the ``PdqIndex``'s own immutable view (rows are found by hash; a group number never
changes while its row is alive).
"""

import threading
from dataclasses import dataclass, field

import numpy as np
import orjson

from federation.matching.index import STATE_CODES, STATE_NAMES, PdqIndex

DEFAULT_QUALITY_MIN = 50
DEFAULT_QUERY_MIN = 80
DEFAULT_COMPARED_MIN = 0
PAIRS_MAX = 10  # best frame pairs reported per matched video
GROWTH = 1.25
_EMPTY = np.zeros((0, 4), dtype=np.uint64)


@dataclass(frozen=True)
class DistinctFrames:
    """A frame list reduced to its distinct hashes (first-occurrence order): ``words`` (n, 4)
    uint64, ``quality`` (the best of the hash's frames), ``timestamp_ms`` (its first frame's)."""

    words: np.ndarray
    quality: np.ndarray
    timestamp_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.words)

    def kept(self, quality_min: int) -> "DistinctFrames":
        keep = self.quality >= quality_min
        return DistinctFrames(self.words[keep], self.quality[keep], self.timestamp_ms[keep])


def distinct_frames(
    words: np.ndarray, quality: np.ndarray, timestamp_ms: np.ndarray
) -> DistinctFrames:
    """The distinct frames of a frame list given in frame order (arrays of equal length)."""
    words = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1, 4)
    if len(words) == 0:
        return DistinctFrames(_EMPTY, np.zeros(0, np.int16), np.zeros(0, np.int64))
    keys = words.view(np.dtype((np.void, 32))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    best = np.full(len(first), -1, dtype=np.int16)
    np.maximum.at(best, inverse.ravel(), np.asarray(quality, dtype=np.int16))
    order = np.argsort(first, kind="stable")  # first-occurrence order, so timestamps ascend
    rows = first[order]
    return DistinctFrames(
        words[rows].copy(),
        best[order],
        np.asarray(timestamp_ms, dtype=np.int64)[rows],
    )


def distinct_from_canonical(text: str | bytes) -> DistinctFrames:
    """The distinct frames of a stored canonical frame list (docs/video.md §1: already checked
    when it was signed, so read without checks)."""
    frames = orjson.loads(text)
    if not frames:
        return distinct_frames(_EMPTY, np.zeros(0), np.zeros(0))
    words = np.frombuffer(bytes.fromhex("".join(frame[2] for frame in frames)), dtype=">u8").astype(
        np.uint64
    )
    return distinct_frames(
        words.reshape(-1, 4),
        np.fromiter((frame[1] for frame in frames), dtype=np.int16, count=len(frames)),
        np.fromiter((frame[3] for frame in frames), dtype=np.int64, count=len(frames)),
    )


def frame_list_distinct(frames) -> DistinctFrames:
    """The distinct frames of a ``federation.video.frames.FrameList`` (a query's)."""
    return distinct_from_canonical(frames.canonical)


@dataclass(frozen=True)
class FramePair:
    query_ms: int
    shared_ms: int
    distance: int


@dataclass(frozen=True)
class VideoMatch:
    value: str  # the shared vpdq entry's value
    state: str
    query_percent: float
    compared_percent: float
    query_frames: int  # distinct query frames kept (the query % denominator)
    matched_query_frames: int
    shared_frames: int  # distinct frames of the shared video kept (the compared % denominator)
    matched_shared_frames: int
    pairs: tuple[FramePair, ...]
    duration_ms: int = 0  # the shared video's last frame timestamp


@dataclass(frozen=True)
class FrameHit:
    """One query frame against one shared video (``matches_by_frame``)."""

    query: int  # the query frame's position in the distinct frames searched
    value: str
    shared_ms: int
    distance: int


@dataclass
class _Columns:
    """Growable int arrays sharing one length (``n``)."""

    dtypes: dict
    n: int = 0
    arrays: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.arrays = {name: np.zeros(1024, dtype=dt) for name, dt in self.dtypes.items()}

    def reserve(self, extra: int) -> int:
        start = self.n
        need = start + extra
        capacity = len(next(iter(self.arrays.values())))
        if need > capacity:
            capacity = max(int(need * GROWTH), 1024)
            for name, old in self.arrays.items():
                new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
                new[:start] = old[:start]
                self.arrays[name] = new
        self.n = need
        return start

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


class VideoIndex:
    """Shared videos by their distinct frames; exact search by query video or by single frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.frames = PdqIndex(for_answers=False)  # searched by words only
        self._slot_of: dict[str, int] = {}
        self._values: list[str] = []
        self._videos = _Columns(
            {
                "alive": np.uint8,
                "state": np.uint8,
                "start": np.int64,
                "end": np.int64,
                "duration": np.int64,
            }
        )
        self._hist = np.zeros((1024, 101), dtype=np.int32)  # distinct frames by quality
        self._groups = _Columns({"head": np.int32, "live": np.int32})
        self._posts = _Columns(
            {
                "slot": np.int32,
                "quality": np.int8,
                "ms": np.int32,
                "next": np.int32,
            }
        )
        self.generation = 0  # raised by every video added: open live sessions re-check then
        self._live_videos = 0

    # --- building and updating ----------------------------------------------------------------

    def build(self, videos: list[tuple[str, str, DistinctFrames]]) -> None:
        """Replace the contents with these ``(value, state, distinct frames)``, vectorised."""
        with self._lock:
            self._reset()
            if not videos:
                self.frames.build(_EMPTY, np.zeros(0, np.int16), np.zeros(0, np.uint8))
                return
            counts = np.array([len(f) for _, _, f in videos], dtype=np.int64)
            words = np.concatenate([f.words for _, _, f in videos]).reshape(-1, 4)
            keys = words.view(np.dtype((np.void, 32))).ravel()
            _, first, group = np.unique(keys, return_index=True, return_inverse=True)
            group = group.ravel().astype(np.int32)
            n_groups = len(first)
            self.frames.build(
                words[first],
                np.full(n_groups, -1, dtype=np.int16),
                np.full(n_groups, STATE_CODES["vetted"], dtype=np.uint8),
                payload=np.arange(n_groups, dtype=np.int32),
            )
            total = len(words)
            self._posts.reserve(total)
            slots = np.repeat(np.arange(len(videos), dtype=np.int32), counts)
            self._posts["slot"][:total] = slots
            self._posts["quality"][:total] = np.concatenate([f.quality for _, _, f in videos])
            self._posts["ms"][:total] = np.concatenate([f.timestamp_ms for _, _, f in videos])
            # Chain each group's postings: sorted by group, each points to the previous one.
            order = np.argsort(group, kind="stable").astype(np.int32)
            sorted_groups = group[order]
            nxt = np.full(total, -1, dtype=np.int32)
            same = sorted_groups[1:] == sorted_groups[:-1]
            nxt[order[1:][same]] = order[:-1][same]
            self._posts["next"][:total] = nxt
            self._groups.reserve(n_groups)
            last = np.flatnonzero(np.append(sorted_groups[1:] != sorted_groups[:-1], True))
            self._groups["head"][sorted_groups[last]] = order[last]
            self._groups["live"][:n_groups] = np.bincount(group, minlength=n_groups)
            self._videos.reserve(len(videos))
            ends = np.cumsum(counts)
            self._videos["start"][: len(videos)] = ends - counts
            self._videos["end"][: len(videos)] = ends
            self._videos["alive"][: len(videos)] = 1
            self._hist = np.zeros((max(len(videos), 1024), 101), dtype=np.int32)
            for slot, (value, state, f) in enumerate(videos):
                self._slot_of[value] = slot
                self._values.append(value)
                self._videos["state"][slot] = STATE_CODES[state]
                self._videos["duration"][slot] = int(f.timestamp_ms.max()) if len(f) else 0
                self._hist[slot] = np.bincount(f.quality, minlength=101)[:101]
            self._live_videos = len(videos)
            self.generation = 1
        self.frames.warm_up()

    def upsert(self, value: str, *, state: str, frames: DistinctFrames | None) -> None:
        """Add a video (``frames`` needed), or update the state of one already here."""
        with self._lock:
            slot = self._slot_of.get(value)
            if slot is not None and self._videos["alive"][slot]:
                self._videos["state"][slot] = STATE_CODES[state]
                return
            if frames is None or len(frames) == 0:
                return
            slot = self._videos.reserve(1)
            if slot >= len(self._hist):
                grown = np.zeros((int(len(self._hist) * 2), 101), dtype=np.int32)
                grown[: len(self._hist)] = self._hist
                self._hist = grown
            start = self._posts.reserve(len(frames))
            for i in range(len(frames)):
                candidate = self._groups.n
                group = self.frames.upsert_words(
                    frames.words[i], state="vetted", quality=None, payload=candidate
                )
                if group == candidate:
                    self._groups.reserve(1)
                    self._groups["head"][group] = -1
                    self._groups["live"][group] = 0
                p = start + i
                self._posts["slot"][p] = slot
                self._posts["quality"][p] = frames.quality[i]
                self._posts["ms"][p] = frames.timestamp_ms[i]
                self._posts["next"][p] = self._groups["head"][group]
                self._groups["head"][group] = p
                self._groups["live"][group] += 1
            self._videos["start"][slot] = start
            self._videos["end"][slot] = start + len(frames)
            self._videos["state"][slot] = STATE_CODES[state]
            self._videos["duration"][slot] = int(frames.timestamp_ms.max())
            self._hist[slot] = np.bincount(frames.quality, minlength=101)[:101]
            self._videos["alive"][slot] = 1
            self._slot_of[value] = slot
            if slot == len(self._values):
                self._values.append(value)
            self._live_videos += 1
            self.generation += 1

    def remove(self, value: str, *, frames: DistinctFrames | None = None) -> bool:
        """Take a video out. Given its ``frames``, each found by hash gives its group (the row's
        payload); a group left with no live posting leaves the frame index. Without them (never,
        from the store: a stored list is kept for good) the postings only stop counting."""
        with self._lock:
            slot = self._slot_of.get(value)
            if slot is None or not self._videos["alive"][slot]:
                return False
            self._videos["alive"][slot] = 0
            self._live_videos -= 1
            for words in () if frames is None else frames.words:
                group = self.frames.payload_of(words)
                if group < 0:
                    continue
                self._groups["live"][group] -= 1
                if self._groups["live"][group] == 0:
                    self._groups["head"][group] = -1
                    self.frames.remove_words(words)
            return True

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live_videos

    def frame_count(self) -> int:
        """Distinct frames of the live videos (postings), the unit of the memory figure."""
        with self._lock:
            alive = self._videos["alive"][: self._videos.n].astype(bool)
            spans = self._videos["end"][: self._videos.n] - self._videos["start"][: self._videos.n]
            return int(spans[alive].sum())

    def memory_bytes(self) -> int:
        return (
            self.frames.memory_bytes()
            + self._posts.nbytes()
            + self._groups.nbytes()
            + self._videos.nbytes()
            + self._hist.nbytes
        )

    def _hits(
        self, words: np.ndarray, *, threshold: int, quality_min: int
    ) -> list[tuple[int, int, int, int]]:
        """Every (query position, video slot, posting, distance) within ``threshold``, for live
        videos and shared frames of quality ``>= quality_min``."""
        if len(words) == 0:
            return []
        qi, rows, dist, view = self.frames.search_words(words, threshold=threshold)
        groups = view.payload[rows]
        hits = []
        with self._lock:
            head = self._groups["head"]
            post_slot, post_quality = self._posts["slot"], self._posts["quality"]
            post_next, alive = self._posts["next"], self._videos["alive"]
            for q, group, d in zip(qi.tolist(), groups.tolist(), dist.tolist(), strict=True):
                if group < 0 or group >= self._groups.n:
                    continue
                p = int(head[group])
                while p >= 0:
                    slot = int(post_slot[p])
                    if alive[slot] and post_quality[p] >= quality_min:
                        hits.append((q, slot, p, d))
                    p = int(post_next[p])
        return hits

    def search(
        self,
        query: DistinctFrames,
        *,
        threshold: int = 31,
        quality_min: int = DEFAULT_QUALITY_MIN,
        query_min: int = DEFAULT_QUERY_MIN,
        compared_min: int = DEFAULT_COMPARED_MIN,
    ) -> list[VideoMatch]:
        """The shared videos a query video matches, best first (query %, compared %, value)."""
        kept = query.kept(quality_min)
        hits = self._hits(kept.words, threshold=threshold, quality_min=quality_min)
        by_slot: dict[int, list[tuple[int, int, int]]] = {}
        for q, slot, p, d in hits:
            by_slot.setdefault(slot, []).append((q, p, d))
        matches = []
        with self._lock:
            for slot, items in by_slot.items():
                shared_total = int(self._hist[slot, quality_min:].sum())
                match = _video_match(
                    value=self._values[slot],
                    state=STATE_NAMES[int(self._videos["state"][slot])],
                    items=[(q, p, int(self._posts["ms"][p]), d) for q, p, d in items],
                    query=kept,
                    shared_total=shared_total,
                    query_min=query_min,
                    compared_min=compared_min,
                    duration_ms=int(self._videos["duration"][slot]),
                )
                if match is not None:
                    matches.append(match)
        return sort_matches(matches)

    def matches_by_frame(
        self, words: np.ndarray, *, threshold: int, quality_min: int
    ) -> list[FrameHit]:
        """Single frames (PDQ hashes) against every shared video's distinct frames of quality
        ``>= quality_min``: one hit per (frame, video), at the nearest of that video's frames
        (then the earliest)."""
        best: dict[tuple[int, int], tuple[int, int]] = {}
        with_ms = []
        for q, slot, p, d in self._hits(words, threshold=threshold, quality_min=quality_min):
            with_ms.append((q, slot, d, int(self._posts["ms"][p])))
        for q, slot, d, ms in with_ms:
            key = (q, slot)
            if key not in best or (d, ms) < best[key]:
                best[key] = (d, ms)
        return sorted(
            (FrameHit(q, self._values[slot], ms, d) for (q, slot), (d, ms) in best.items()),
            key=lambda h: (h.query, h.distance, h.value, h.shared_ms),
        )

    def frame_hits(
        self, words: np.ndarray, *, threshold: int, quality_min: int
    ) -> list[tuple[int, str, int, int, int]]:
        """Every (query position, video value, the shared frame's position among the video's
        distinct frames, its timestamp, distance): what a live session records as evidence (a
        position is the same in every process, a posting number is not)."""
        hits = self._hits(words, threshold=threshold, quality_min=quality_min)
        with self._lock:
            start, ms = self._videos["start"], self._posts["ms"]
            return [
                (q, self._values[slot], int(p - start[slot]), int(ms[p]), d)
                for q, slot, p, d in hits
            ]

    def state_of(self, value: str) -> str | None:
        slot = self._slot_of.get(value)
        if slot is None or not self._videos["alive"][slot]:
            return None
        return STATE_NAMES[int(self._videos["state"][slot])]

    def distinct_count(self, value: str, *, quality_min: int) -> int:
        slot = self._slot_of.get(value)
        if slot is None:
            return 0
        return int(self._hist[slot, quality_min:].sum())

    def duration_ms(self, value: str) -> int:
        slot = self._slot_of.get(value)
        return 0 if slot is None else int(self._videos["duration"][slot])


def _video_match(
    *,
    value: str,
    state: str,
    items: list[tuple[int, int, int, int]],
    query: DistinctFrames,
    shared_total: int,
    query_min: int,
    compared_min: int,
    duration_ms: int,
) -> VideoMatch | None:
    """Score one shared video from its hits: (query position, shared distinct frame, shared
    timestamp, distance)."""
    if not items or shared_total == 0 or len(query) == 0:
        return None
    nearest: dict[int, tuple[int, int]] = {}
    shared = set()
    for q, frame, ms, d in items:
        shared.add(frame)
        if q not in nearest or (d, ms) < nearest[q]:
            nearest[q] = (d, ms)
    matched_query, matched_shared = len(nearest), len(shared)
    if matched_query * 100 < query_min * len(query):
        return None
    if matched_shared * 100 < compared_min * shared_total:
        return None
    pairs = sorted(
        (FramePair(int(query.timestamp_ms[q]), ms, d) for q, (d, ms) in nearest.items()),
        key=lambda pair: (pair.distance, pair.query_ms, pair.shared_ms),
    )[:PAIRS_MAX]
    return VideoMatch(
        value=value,
        state=state,
        query_percent=matched_query * 100 / len(query),
        compared_percent=matched_shared * 100 / shared_total,
        query_frames=len(query),
        matched_query_frames=matched_query,
        shared_frames=shared_total,
        matched_shared_frames=matched_shared,
        pairs=tuple(pairs),
        duration_ms=duration_ms,
    )


def sort_matches(matches: list[VideoMatch]) -> list[VideoMatch]:
    return sorted(matches, key=lambda m: (-m.query_percent, -m.compared_percent, m.value))


def brute_force_videos(
    query: DistinctFrames,
    shared: list[tuple[str, str, DistinctFrames]],
    *,
    threshold: int = 31,
    quality_min: int = DEFAULT_QUALITY_MIN,
    query_min: int = DEFAULT_QUERY_MIN,
    compared_min: int = DEFAULT_COMPARED_MIN,
) -> list[VideoMatch]:
    """The oracle: every query frame against every frame of every video by numpy popcount."""
    kept = query.kept(quality_min)
    matches = []
    for value, state, frames in shared:
        theirs = frames.kept(quality_min)
        if len(kept) == 0 or len(theirs) == 0:
            continue
        d = np.bitwise_count(kept.words[:, None, :] ^ theirs.words[None, :, :]).sum(axis=2)
        qs, ss = np.nonzero(d <= threshold)
        items = [
            (int(q), int(s), int(theirs.timestamp_ms[s]), int(d[q, s]))
            for q, s in zip(qs.tolist(), ss.tolist(), strict=True)
        ]
        match = _video_match(
            value=value,
            state=state,
            items=items,
            query=kept,
            shared_total=len(theirs),
            query_min=query_min,
            compared_min=compared_min,
            duration_ms=int(frames.timestamp_ms.max()),
        )
        if match is not None:
            matches.append(match)
    return sort_matches(matches)
