"""The alert rule of live-stream sessions and the evidence it is judged on (docs/video.md, "Live
streams"): a session's matching settings, the search of a call's frames against the shared videos
and photos, and the per-video accounting of what the stream has matched so far.

The alert rule, for one shared video, over the stream so far:
- at least ``min_frames`` distinct stream frames (quality >= the floor) matched a frame of that
  video (distance <= ``threshold``); and
- **coverage**: the distinct frames of that video they matched are at least ``coverage`` % of
  the frames one would expect to see, that is of ``min(matched stream frames, shared frames x
  span / duration)``, where ``span`` is the time from the first to the last matched stream frame
  and ``duration`` the shared video's. A stream that keeps matching the same one or two shared
  frames (a title card, a black frame, a logo slate common to many videos) has matched stream
  frames but no coverage, and does not alert.

Evidence is added only for the stream frames new to the session, and only the videos a call
touched change, so a call costs O(its new frames), not O(the session). Nothing here reads or
writes the database: the session's services (``federation.live.services``) do.
"""

import bisect
import math
from dataclasses import dataclass

import numpy as np

from federation.live.models import LiveSession
from federation.matching.index import pdq_words, words_hex
from federation.matching.video import DEFAULT_QUALITY_MIN, distinct_frames
from federation.video.frames import Frame

DEFAULT_MIN_FRAMES = 5
DEFAULT_COVERAGE = 50
BEST_PAIRS = 10


@dataclass(frozen=True)
class LiveSettings:
    """A session's matching settings and alert rule, fixed when it opens."""

    threshold: int = 31
    frame_quality_min: int = DEFAULT_QUALITY_MIN
    min_frames: int = DEFAULT_MIN_FRAMES
    coverage: int = DEFAULT_COVERAGE


def kept_distinct(frames, quality_min: int) -> list[Frame]:
    """The call's distinct frames (by hash, the first of each) of quality >= the floor."""
    seen: set[str] = set()
    kept = []
    for frame in frames.frames:
        if frame.quality >= quality_min and frame.pdq not in seen:
            seen.add(frame.pdq)
            kept.append(frame)
    return kept


def frame_hits(store, fixed: LiveSettings, pdqs: list[str]) -> list[tuple]:
    if not pdqs:
        return []
    return store.video.frame_hits(
        pdq_words(pdqs), threshold=fixed.threshold, quality_min=fixed.frame_quality_min
    )


def add_evidence(evidence: dict, hits, stream_ms: list[int]) -> set[str]:
    """Add frame hits (query position in ``stream_ms``, value, shared position, shared ms,
    distance) of stream frames new to the session; returns the videos whose evidence changed.
    Per video: ``stream`` (the stream time of each matched distinct stream frame), ``shared``
    (the distinct shared frame positions matched, sorted), ``first_ms``/``last_ms``, ``best``."""
    counted: set[tuple[int, str]] = set()
    touched: set[str] = set()
    for q, value, position, shared_ms, distance in hits:
        item = evidence.get(value)
        if item is None:
            item = evidence[value] = {
                "stream": [],
                "shared": [],
                "first_ms": None,
                "last_ms": None,
                "best": [],
            }
        touched.add(value)
        ms = stream_ms[q]
        if (q, value) not in counted:
            counted.add((q, value))
            item["stream"].append(ms)
        shared = item["shared"]
        at = bisect.bisect_left(shared, position)
        if at == len(shared) or shared[at] != position:
            shared.insert(at, position)
        item["first_ms"] = ms if item["first_ms"] is None else min(item["first_ms"], ms)
        item["last_ms"] = ms if item["last_ms"] is None else max(item["last_ms"], ms)
        pair = [ms, shared_ms, distance]
        if pair not in item["best"]:
            item["best"] = sorted([*item["best"], pair], key=lambda p: (p[2], p[0], p[1]))[
                :BEST_PAIRS
            ]
    return touched


def alert_rule_met(
    *,
    matched_stream: int,
    matched_shared: int,
    span_ms: int,
    shared_frames: int,
    duration_ms: int,
    min_frames: int,
    coverage: int,
) -> bool:
    """The rule (module docstring), in integers where it compares."""
    if matched_stream < min_frames or shared_frames == 0:
        return False
    fraction = 1.0 if duration_ms <= 0 else min(1.0, span_ms / duration_ms)
    expected = min(matched_stream, shared_frames * fraction)
    return matched_shared * 100 >= math.ceil(coverage * expected)


def session_alerts(evidence: dict, fixed: LiveSettings, store) -> list[dict]:
    alerts = []
    for value, item in evidence.items():
        if store.video.state_of(value) is None:
            continue  # left the shared set
        shared_frames = store.video.distinct_count(value, quality_min=fixed.frame_quality_min)
        span = (item["last_ms"] or 0) - (item["first_ms"] or 0)
        if alert_rule_met(
            matched_stream=len(item["stream"]),
            matched_shared=len(item["shared"]),
            span_ms=span,
            shared_frames=shared_frames,
            duration_ms=store.video.duration_ms(value),
            min_frames=fixed.min_frames,
            coverage=fixed.coverage,
        ):
            alerts.append(
                {
                    "value": value,
                    "state": store.video.state_of(value),
                    "matched_frames": len(item["stream"]),
                    "matched_shared_frames": len(item["shared"]),
                    "shared_frames": shared_frames,
                    "span_ms": span,
                    "pairs": [
                        {"query_ms": a, "shared_ms": b, "distance": d} for a, b, d in item["best"]
                    ],
                }
            )
    alerts.sort(key=lambda a: (-a["matched_frames"], a["value"]))
    return alerts


def photo_hits(store, session: LiveSession, frames) -> list[tuple[int, str, int]]:
    kept = distinct_frames(
        pdq_words([f.pdq for f in frames.frames]),
        np.array([f.quality for f in frames.frames], dtype=np.int16),
        np.array([f.timestamp_ms for f in frames.frames], dtype=np.int64),
    ).kept(session.frame_quality_min)
    if not len(kept):
        return []
    qi, rows, dist, view = store.pdq.search_words(kept.words, threshold=session.threshold)
    hits = [
        (int(kept.timestamp_ms[q]), words_hex(view.hashes[row]), d)
        for q, row, d in zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True)
    ]
    return sorted(hits)
