"""Matching a caller's signals against the shared set (docs/matching.md).

``match_answer`` (the API's whole answer, as JSON bytes) and ``match_signals`` (its results as
dicts) answer from this process's index (``store.py``), then show the matched entries as members
see them now (the sync rendering: state, labels, contributing organisations, quality; kept by the
store, rendered from PostgreSQL when changed or new), so an entry that has just left the shared
set is never reported even if the index has not applied its removal yet. One audit event per
request records the use of the shared set in aggregate: counts by type, how many signals
matched, how many matches.
"""

import re
from dataclasses import dataclass, field

import numpy as np
import orjson
from django.conf import settings
from django.utils import timezone

from federation.errors import InvalidInput
from federation.gc_pause import cycle_collection_paused
from federation.matching.answers import (
    entry_dict,
    json_document,
    pdq_answer_document,
    pdq_match_documents,
    pdq_match_lists,
    render_matched_documents,
)
from federation.matching.index import HEX_LENGTHS, MAX_THRESHOLD, pdq_words, words_hex
from federation.matching.kept import KeptSpans
from federation.matching.store import Pending, check_sends_event, match_store
from federation.matching.video import (
    DEFAULT_COMPARED_MIN,
    DEFAULT_QUALITY_MIN,
    DEFAULT_QUERY_MIN,
    frame_list_distinct,
)
from federation.transparency.actions import Action, Key
from federation.transparency.audit import (
    AuditRecord,
    audit_insert_sql,
    audit_inserted,
    audit_record,
)
from federation.video.frames import MAX_FRAMES, FrameList, FrameListError, normalise_frames
from members.actors import Actor

_HEX = re.compile(r"[0-9a-f]*")
QUALITY_MAX = 100
VPDQ = "vpdq"
SIGNAL_TYPES = (*HEX_LENGTHS, VPDQ)
# Frames of all vpdq signals of one request: one video of 5 h 33 min at one frame a second,
# the most a signed vpdq signal holds (docs/video.md, "Limits").
MAX_FRAMES_PER_REQUEST = MAX_FRAMES


@dataclass(frozen=True)
class Signal:
    type: str
    value: str
    frames: FrameList | None = field(default=None, compare=False)  # vpdq only


@dataclass(frozen=True)
class VideoParameters:
    """The vpdq settings of a match request (docs/video.md, "Matching")."""

    quality_min: int = DEFAULT_QUALITY_MIN  # frame quality floor, both sides
    query_min: int = DEFAULT_QUERY_MIN  # query %
    compared_min: int = DEFAULT_COMPARED_MIN  # compared %
    include_frames: bool = False  # pdq queries also against the frames of shared videos


def match_video_parameters(
    *,
    frame_quality_min: object = None,
    query_match_min: object = None,
    compared_match_min: object = None,
    include_frames: object = None,
) -> VideoParameters:
    """The vpdq settings, each null for its default, else an integer 0-100 (400
    ``invalid_video_parameter`` naming the ``field``); ``include_frames`` a boolean."""
    values = {}
    for name, raw, default in (
        ("frame_quality_min", frame_quality_min, DEFAULT_QUALITY_MIN),
        ("query_match_min", query_match_min, DEFAULT_QUERY_MIN),
        ("compared_match_min", compared_match_min, DEFAULT_COMPARED_MIN),
    ):
        if raw is None:
            raw = default
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
            raise InvalidInput(
                f"{name} must be null or an integer 0-100.",
                code="invalid_video_parameter",
                details={"field": name, "min": 0, "max": 100},
            )
        values[name] = raw
    if include_frames is None:
        include_frames = False
    if not isinstance(include_frames, bool):
        raise InvalidInput(
            "include_frames must be true or false.",
            code="invalid_video_parameter",
            details={"field": "include_frames"},
        )
    return VideoParameters(
        values["frame_quality_min"],
        values["query_match_min"],
        values["compared_match_min"],
        include_frames,
    )


def match_vpdq_parse(*, frames: object, max_frames: int = MAX_FRAMES) -> Signal:
    """A vpdq query: its frame list, leniently normalised (any order, hex in either case;
    docs/video.md §1), its value the digest of the canonical list. 400 ``invalid_signal`` with
    ``field`` ``frames`` (and ``frame``, the offending frame's position) when it is not one."""
    if not isinstance(frames, list):
        raise InvalidInput(
            "A vpdq signal carries frames: [[frame_number, quality, pdq_hex, timestamp_ms], ...].",
            code="invalid_signal",
            details={"field": "frames"},
        )
    try:
        frame_list = normalise_frames(frames, max_frames=max_frames)
    except FrameListError as exc:
        details = {"field": "frames"}
        if exc.index is not None:
            details["frame"] = exc.index
        raise InvalidInput(f"frames: {exc}", code="invalid_signal", details=details) from None
    return Signal(VPDQ, frame_list.digest, frame_list)


def match_signal_parse(*, signal_type: object, value: object) -> Signal:
    """A signal with its value normalised (lowercase hex); ``InvalidInput`` (400
    ``invalid_signal``) for an unknown type, a wrong length or a non-hex value."""
    if not isinstance(signal_type, str) or signal_type not in HEX_LENGTHS:
        raise InvalidInput(
            f"type must be one of {', '.join(SIGNAL_TYPES)}.",
            code="invalid_signal",
            details={"field": "type"},
        )
    if not isinstance(value, str):
        raise InvalidInput("value must be a hex string.", code="invalid_signal")
    normalised = value.strip().lower()
    length = HEX_LENGTHS[signal_type]
    if len(normalised) != length or not _HEX.fullmatch(normalised):
        raise InvalidInput(
            f"A {signal_type} value is {length} hex digits.",
            code="invalid_signal",
            details={"field": "value", "length": length},
        )
    return Signal(signal_type, normalised)


def match_parameters(*, threshold: object, quality_min: object) -> tuple[int, int | None]:
    if threshold is None:
        threshold = settings.MATCH_DEFAULT_THRESHOLD
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not 0 <= threshold <= MAX_THRESHOLD
    ):
        raise InvalidInput(
            f"threshold must be an integer 0-{MAX_THRESHOLD}.",
            code="invalid_threshold",
            details={"min": 0, "max": MAX_THRESHOLD},
        )
    if quality_min is not None and (
        isinstance(quality_min, bool)
        or not isinstance(quality_min, int)
        or not 0 <= quality_min <= QUALITY_MAX
    ):
        raise InvalidInput(
            f"quality_min must be null or an integer 0-{QUALITY_MAX}.",
            code="invalid_quality",
            details={"min": 0, "max": QUALITY_MAX},
        )
    return threshold, quality_min


def match_signals(
    *,
    actor: Actor,
    signals: list[Signal],
    threshold: int,
    quality_min: int | None = None,
    video: VideoParameters | None = None,
) -> list[dict]:
    """For each signal, in order: ``{"signal", "matches": [...]}``; each match is the entry as
    members see it plus its ``distance`` (0 for md5 and sha256). A vpdq signal's matches are
    shared videos (with their percentages and frame pairs) and it also gets ``frame_matches``
    (its frames against shared photos); a pdq signal gets ``frame_matches`` (against the frames
    of shared videos) when ``video.include_frames``. docs/video.md, "Matching"."""
    return _matched(actor, signals, threshold, quality_min, video, as_bytes=False)


def match_answer(
    *,
    actor: Actor,
    signals: list[Signal],
    threshold: int,
    quality_min: int | None = None,
    video: VideoParameters | None = None,
) -> bytes:
    """The match API's answer as JSON bytes: ``{"threshold", "quality_min", [the vpdq settings
    when a signal is vpdq or ``include_frames``,] "results"}``, the results those of
    ``match_signals`` (the same document once parsed). A pdq signal's matches are its entries'
    kept JSON with their distance appended (``answers.pdq_match_documents``): no Python object
    per match, which on clustered data (a hundred matches per query) is most of the answer.
    When every signal is pdq and no video frames are asked for, the whole document is laid out
    at once (``answers.pdq_answer_document``)."""
    if all(s.type == "pdq" for s in signals) and not (video and video.include_frames):
        return _pdq_answer(actor, signals, threshold, quality_min)
    results = _matched(actor, signals, threshold, quality_min, video, as_bytes=True)
    answer = {"threshold": threshold, "quality_min": quality_min}
    if video is not None and (video.include_frames or any(s.type == VPDQ for s in signals)):
        answer.update(
            frame_quality_min=video.quality_min,
            query_match_min=video.query_min,
            compared_match_min=video.compared_min,
            include_frames=video.include_frames,
        )
    answer["results"] = results
    return json_document(answer)


def _pdq_answer(actor, signals, threshold, quality_min) -> bytes:
    """``match_answer`` for pdq signals only: the same results as ``_answers`` builds, as one
    document."""

    def build(store, pending):
        found = store.pdq.search_sorted(
            pdq_words([s.value for s in signals]), threshold=threshold, quality_min=quality_min
        )
        spans, complete = store.rendered_spans(found, render_matched_documents, pending)
        head = orjson.dumps({"threshold": threshold, "quality_min": quality_min})
        body, counts = pdq_answer_document(
            head[:-1] + b',"results":[',
            [orjson.dumps({"type": s.type, "value": s.value}) for s in signals],
            spans,
            found.bounds,
            found.which,
            found.distances,
            quality_min,
            complete=complete,
        )
        counts = counts.tolist()
        return body, counts, sum(count > 0 for count in counts), sum(counts)

    return _audited(actor, signals, threshold, quality_min, VideoParameters(), build)


def _matched(actor, signals, threshold, quality_min, video, *, as_bytes: bool) -> list[dict]:
    video = video or VideoParameters()

    def build(store, pending):
        return _answers(store, pending, signals, threshold, quality_min, video, as_bytes)

    return _audited(actor, signals, threshold, quality_min, video, build)


# A request of at most this many signals builds its answer first, as if the index were current
# with nothing pending, and sends its check with its audit event (``_audited``).
ONE_TRIP_SIGNALS = 10


def _audited(actor, signals, threshold, quality_min, video, build):
    """The answer ``build(store, pending)`` makes (with each signal's number of matches, how many
    signals matched and how many matches in all), and its one audit event.

    A small request (``ONE_TRIP_SIGNALS``) on PostgreSQL makes **one round trip**: the answer is
    built from the index and the kept renderings as if nothing were pending, then one statement
    checks that guess and writes the event only if it holds (``MatchStore.check_with_event``), so
    the answer describes the state at the check, as with the check first. If it does not hold
    (the stream moved, or a change is not yet applied; rare), the answer is built again from that
    check's ``Pending`` and the event written alone: no answer leaves without its event. Larger
    requests, whose answer costs more than a round trip to build again, and SQLite, check first
    and write the event after (two round trips)."""
    store = match_store()
    pending = None
    if len(signals) <= ONE_TRIP_SIGNALS and check_sends_event():
        position = store.position
        with cycle_collection_paused():
            answer, counts, matched, total = build(store, Pending(position, {}))
        record = _audit_record(
            actor, signals, threshold, quality_min, matched, total, counts, video
        )
        pending = store.check_with_event(
            position, audit_insert_sql(record, occurred_at=timezone.now())
        )
        if pending is None:
            audit_inserted()
            return answer
    if pending is None:
        pending = store.current()
    with cycle_collection_paused():
        answer, counts, matched, total = build(store, pending)
    # One INSERT, atomic on its own: no transaction block (in autocommit that would add a BEGIN
    # and a COMMIT round trip to every request); the log's sequencing is still asked for after
    # the row is committed (at once in autocommit, else when the caller's transaction commits).
    audit_record(
        _audit_record(actor, signals, threshold, quality_min, matched, total, counts, video)
    )
    return answer


def _answers(
    store, pending, signals, threshold, quality_min, video, as_bytes
) -> tuple[list[dict], list[int], int, int]:
    """The results (a pdq signal's ``matches`` as dicts, or as ``JsonPieces`` when
    ``as_bytes``), each result's number of matches, how many signals matched and how many
    matches in all."""
    found: list[list[tuple[str, int]]] = [[] for _ in signals]  # (value, distance) per query
    videos = {
        i: _match_video(store, s, threshold, quality_min, video)
        for i, s in enumerate(signals)
        if s.type == VPDQ
    }
    pdq_frames = {}
    if video.include_frames:
        pdq_frames = _pdq_against_frames(store, signals, threshold, video)
    pdq_positions = [i for i, s in enumerate(signals) if s.type == "pdq"]
    # The pdq signals' results, already in the answer's order (distance, then value): the
    # signal at pdq_positions[k] has results bounds[k] to bounds[k + 1] of which (positions in
    # the distinct rows found) and distances (numpy arrays).
    bounds = np.zeros(len(pdq_positions) + 1, dtype=np.int64)
    pdq_which = pdq_distances = np.zeros(0, dtype=np.int64)
    pdq_spans = KeptSpans.empty()
    complete = True
    if pdq_positions:
        found_pdq = store.pdq.search_sorted(
            pdq_words([signals[i].value for i in pdq_positions]),
            threshold=threshold,
            quality_min=quality_min,
        )
        bounds, pdq_which, pdq_distances = found_pdq.bounds, found_pdq.which, found_pdq.distances
        pdq_spans, complete = store.rendered_spans(found_pdq, render_matched_documents, pending)
    for i, signal in enumerate(signals):
        if signal.type in store.exact and store.exact[signal.type].get(signal.value) is not None:
            found[i].append((signal.value, 0))
    others: dict[str, set[str]] = {}
    for signal, hits in zip(signals, found, strict=True):
        others.setdefault(signal.type, set()).update(value for value, _ in hits)
    for video_matches, photo_hits in videos.values():
        others.setdefault(VPDQ, set()).update(m.value for m in video_matches)
        others.setdefault("pdq", set()).update(value for _, value, _ in photo_hits)
    for hits in pdq_frames.values():
        others.setdefault(VPDQ, set()).update(hit.value for hit in hits)
    # by value: the other types, and the pdq values video frames found (pdq signals' results
    # are read by row above)
    wanted = {t: sorted(values) for t, values in others.items()}
    rendered = store.rendered_entries(wanted, render_matched_documents, pending)
    entries = _EntriesByPair(
        {t: dict(zip(wanted[t], items, strict=True)) for t, items in rendered.items()}
    )
    build = pdq_match_documents if as_bytes else _counted_lists
    pdq_matches = build(pdq_spans, bounds, pdq_which, pdq_distances, quality_min, complete=complete)
    results = []
    counts = []
    matched = total = 0
    for position, (signal, hits) in enumerate(zip(signals, found, strict=True)):
        if signal.type == VPDQ:
            result = _video_result(signal, *videos[position], entries, quality_min)
            matched += bool(result["matches"] or result["frame_matches"])
            total += len(result["matches"]) + len(result["frame_matches"])
            counts.append(len(result["matches"]))
            results.append(result)
            continue
        if signal.type == "pdq":
            matches, count = next(pdq_matches)
        else:
            matches = []
            for value, distance in hits:
                entry = entries.get((signal.type, value))
                if entry is not None:  # else it left the shared set after the index caught up
                    matches.append({**entry, "distance": distance})
            count = len(matches)
        result = {"signal": {"type": signal.type, "value": signal.value}, "matches": matches}
        if position in pdq_frames:
            result["frame_matches"] = [
                {**entries[(VPDQ, hit.value)], "distance": hit.distance, "shared_ms": hit.shared_ms}
                for hit in pdq_frames[position]
                if (VPDQ, hit.value) in entries
            ]
        matched += bool(count or result.get("frame_matches"))
        total += count + len(result.get("frame_matches", ()))
        counts.append(count)
        results.append(result)
    return results, counts, matched, total


def _counted_lists(spans, bounds, which, distances, quality_min, *, complete: bool):
    """``pdq_match_lists``, each list with its length."""
    for matches in pdq_match_lists(spans, bounds, which, distances, quality_min, complete=complete):
        yield matches, len(matches)


class _EntriesByPair:
    """``store.rendered_entries``'s answer read by ``(signal type, value)``, each entry a new
    dict."""

    def __init__(self, rendered: dict[str, dict]) -> None:
        self._rendered = rendered

    def get(self, pair: tuple[str, str]) -> dict | None:
        rendering = self._rendered.get(pair[0], {}).get(pair[1])
        return None if rendering is None else entry_dict(rendering)

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return self.get(pair) is not None

    def __getitem__(self, pair: tuple[str, str]) -> dict:
        entry = self.get(pair)
        if entry is None:
            raise KeyError(pair)
        return entry


def _match_video(store, signal: Signal, threshold, quality_min, video: VideoParameters):
    """A vpdq query against the shared videos, and its distinct frames (kept by the floor)
    against the shared photos: ``(video matches, [(query frame ms, photo value, distance)])``."""
    query = frame_list_distinct(signal.frames)
    matches = store.video.search(
        query,
        threshold=threshold,
        quality_min=video.quality_min,
        query_min=video.query_min,
        compared_min=video.compared_min,
    )
    kept = query.kept(video.quality_min)
    photo_hits = []
    if len(kept):
        qi, rows, dist, view = store.pdq.search_words(
            kept.words, threshold=threshold, quality_min=quality_min
        )
        for q, row, d in zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True):
            photo_hits.append((int(kept.timestamp_ms[q]), words_hex(view.hashes[row]), d))
    photo_hits.sort(key=lambda hit: (hit[0], hit[2], hit[1]))
    return matches, photo_hits


def _pdq_against_frames(store, signals, threshold, video: VideoParameters) -> dict[int, list]:
    positions = [i for i, s in enumerate(signals) if s.type == "pdq"]
    if not positions:
        return {}
    hits = store.video.matches_by_frame(
        pdq_words([signals[i].value for i in positions]),
        threshold=threshold,
        quality_min=video.quality_min,
    )
    out: dict[int, list] = {i: [] for i in positions}
    for hit in hits:
        out[positions[hit.query]].append(hit)
    for items in out.values():
        items.sort(key=lambda hit: (hit.distance, hit.value, hit.shared_ms))
    return out


def _video_result(signal, video_matches, photo_hits, entries, quality_min) -> dict:
    matches = []
    for m in video_matches:
        entry = entries.get((VPDQ, m.value))
        if entry is None:
            continue  # left the shared set after the index last caught up
        matches.append(
            {
                **entry,
                "distance": min(pair.distance for pair in m.pairs),
                "query_percent": round(m.query_percent, 2),
                "compared_percent": round(m.compared_percent, 2),
                "query_frames": m.query_frames,
                "matched_frames": m.matched_query_frames,
                "shared_frames": m.shared_frames,
                "matched_shared_frames": m.matched_shared_frames,
                "pairs": [
                    {"query_ms": p.query_ms, "shared_ms": p.shared_ms, "distance": p.distance}
                    for p in m.pairs
                ],
            }
        )
    frame_matches = []
    for query_ms, value, distance in photo_hits:
        entry = entries.get(("pdq", value))
        if entry is None or (
            quality_min is not None and (entry["quality"] is None or entry["quality"] < quality_min)
        ):
            continue
        frame_matches.append({**entry, "distance": distance, "query_ms": query_ms})
    return {
        "signal": {"type": VPDQ, "value": signal.value, "frames": len(signal.frames)},
        "matches": matches,
        "frame_matches": frame_matches,
    }


def _audit_record(
    actor: Actor, signals, threshold, quality_min, matched, total, per_signal, video
) -> AuditRecord:
    """The request's ``match.requested`` event (docs/matching.md, "What is audited")."""
    counts: dict[str, int] = {}
    for signal in signals:
        counts[signal.type] = counts.get(signal.type, 0) + 1
    data = {
        Key.SIGNALS: counts,
        Key.THRESHOLD: threshold,
        Key.QUALITY_MIN: quality_min,
        Key.MATCHED_SIGNALS: matched,
        Key.MATCHES: total,
    }
    if VPDQ in counts or video.include_frames:
        data[Key.VIDEO] = {
            Key.FRAMES: sum(len(s.frames) for s in signals if s.type == VPDQ),
            "frame_quality_min": video.quality_min,
            "query_match_min": video.query_min,
            "compared_match_min": video.compared_min,
            "include_frames": video.include_frames,
        }
    if settings.MATCH_AUDIT_VALUES:
        data[Key.VALUES] = [
            {"type": signal.type, "value": signal.value, "matches": count}
            for signal, count in zip(signals, per_signal, strict=True)
        ]
    return AuditRecord(
        action=Action.MATCH_REQUESTED,
        actor=actor,
        organisation=actor.organisation_slug,
        data=data,
    )
