"""Live-stream sessions (docs/video.md, "Live streams"): open, append frames, show, close.

Each call that changes a session runs in one transaction holding the session's row lock, and
writes its audit event inside it, in aggregate: ``live.opened``, ``live.alerted`` (only on a call
where a shared video newly meets the alert rule), ``live.closed`` (closed or expired). The
frames themselves are never audited.

The alert rule, for one shared video, over the stream so far:
- at least ``min_frames`` distinct stream frames (quality >= the floor) matched a frame of that
  video (distance <= ``threshold``); and
- **coverage**: the distinct frames of that video they matched are at least ``coverage`` % of
  the frames one would expect to see, that is of ``min(matched stream frames, shared frames x
  span / duration)``, where ``span`` is the time from the first to the last matched stream frame
  and ``duration`` the shared video's. A stream that keeps matching the same one or two shared
  frames (a title card, a black frame, a logo slate common to many videos) has matched stream
  frames but no coverage, and does not alert.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from federation.contributions.models import Contribution, SignalType
from federation.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from federation.live.models import LiveFrame, LiveSession
from federation.matching.index import MAX_THRESHOLD, pdq_words, words_hex
from federation.matching.store import match_store
from federation.matching.video import DEFAULT_QUALITY_MIN, distinct_frames
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.video.frames import FrameListError, normalise_frames
from members.actors import Actor

MAX_FRAMES_PER_CALL = 60
MAX_FRAMES_PER_SESSION = 7_200  # two hours at one frame a second
MAX_OPEN_SESSIONS = 10  # per member organisation
IDLE_SECONDS = 300  # a session with no call for this long expires
DEFAULT_MIN_FRAMES = 5
DEFAULT_COVERAGE = 50
MIN_FRAMES_MAX = 600
BEST_PAIRS = 10


@dataclass(frozen=True)
class LiveSettings:
    threshold: int = 31
    frame_quality_min: int = DEFAULT_QUALITY_MIN
    min_frames: int = DEFAULT_MIN_FRAMES
    coverage: int = DEFAULT_COVERAGE


def live_settings_parse(body: dict) -> LiveSettings:
    """The settings of a new session, each null or absent for its default (400
    ``invalid_live_parameter`` naming the ``field`` and its bounds)."""
    bounds = {
        "threshold": (0, MAX_THRESHOLD, 31),
        "frame_quality_min": (0, 100, DEFAULT_QUALITY_MIN),
        "min_frames": (1, MIN_FRAMES_MAX, DEFAULT_MIN_FRAMES),
        "coverage": (0, 100, DEFAULT_COVERAGE),
    }
    values = {}
    for name, (low, high, default) in bounds.items():
        raw = body.get(name)
        if raw is None:
            raw = default
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise InvalidInput(
                f"{name} must be null or an integer {low}-{high}.",
                code="invalid_live_parameter",
                details={"field": name, "min": low, "max": high},
            )
        values[name] = raw
    return LiveSettings(**values)


def _organisation(actor: Actor):
    if actor.organisation is None:
        raise Forbidden(
            "Live sessions belong to a member organisation: use a member's token.",
            code="member_only",
        )
    return actor.organisation


def _expire_idle(now, *, organisation=None) -> None:
    """Close (as ``expired``) every open session idle past ``IDLE_SECONDS``, with its audit
    event; called lazily by the calls that open, read or write sessions."""
    idle = LiveSession.objects.filter(
        state=LiveSession.State.OPEN, last_call_at__lt=now - timedelta(seconds=IDLE_SECONDS)
    )
    if organisation is not None:
        idle = idle.filter(organisation=organisation)
    for session in idle.select_for_update(skip_locked=True).select_related("organisation"):
        _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)


def _close(session: LiveSession, actor: Actor, state: str, now) -> None:
    session.state = state
    session.closed_at = now
    session.save(update_fields=["state", "closed_at"])
    LiveFrame.objects.filter(session=session).delete()
    audit_record(
        AuditRecord(
            action=Action.LIVE_CLOSED,
            actor=actor,
            organisation=session.organisation.slug,
            object_type=ObjectType.LIVE_SESSION,
            object_id=str(session.id),
            data={
                Key.REASON: "closed" if state == LiveSession.State.CLOSED else "expired",
                Key.FRAMES: session.frames_received,
                Key.CALLS: session.calls,
                Key.ALERTS: list(session.alerted),
            },
        )
    )


def live_session_open(*, actor: Actor, settings: LiveSettings) -> LiveSession:
    organisation = _organisation(actor)
    now = timezone.now()
    with transaction.atomic():
        _expire_idle(now)
        open_count = LiveSession.objects.filter(
            organisation=organisation, state=LiveSession.State.OPEN
        ).count()
        if open_count >= MAX_OPEN_SESSIONS:
            raise RateLimited(
                f"At most {MAX_OPEN_SESSIONS} open live sessions per member: close one first.",
                code="too_many_sessions",
                details={"limit": MAX_OPEN_SESSIONS},
            )
        session = LiveSession.objects.create(
            organisation=organisation,
            opened_at=now,
            last_call_at=now,
            threshold=settings.threshold,
            frame_quality_min=settings.frame_quality_min,
            min_frames=settings.min_frames,
            coverage=settings.coverage,
            position=0,
        )
        audit_record(
            AuditRecord(
                action=Action.LIVE_OPENED,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.LIVE_SESSION,
                object_id=str(session.id),
                data={
                    Key.VIDEO: {
                        "threshold": settings.threshold,
                        "frame_quality_min": settings.frame_quality_min,
                        "min_frames": settings.min_frames,
                        "coverage": settings.coverage,
                    }
                },
            )
        )
    return session


def _owned(actor: Actor, session_id, *, lock: bool) -> LiveSession:
    organisation = _organisation(actor)
    query = LiveSession.objects.select_related("organisation")
    if lock:
        query = query.select_for_update(of=("self",))
    try:
        return query.get(pk=session_id, organisation=organisation)
    except (LiveSession.DoesNotExist, ValueError):
        # Another member's session is not found either: ids do not leak.
        raise NotFound("No such live session.", code="not_found") from None


def live_session_get(*, actor: Actor, session_id) -> LiveSession:
    now = timezone.now()
    with transaction.atomic():
        session = _owned(actor, session_id, lock=True)
        if _is_idle(session, now):
            _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)
    return session


def live_session_close(*, actor: Actor, session_id) -> LiveSession:
    now = timezone.now()
    with transaction.atomic():
        session = _owned(actor, session_id, lock=True)
        if session.state == LiveSession.State.OPEN:
            if _is_idle(session, now):
                _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)
            else:
                _close(session, actor, LiveSession.State.CLOSED, now)
    return session


def _is_idle(session: LiveSession, now) -> bool:
    return session.state == LiveSession.State.OPEN and session.last_call_at < now - timedelta(
        seconds=IDLE_SECONDS
    )


@dataclass(frozen=True)
class LiveAnswer:
    session: LiveSession
    alerts: list[dict]  # every shared video meeting the rule so far
    photo_hits: list[tuple[int, str, int]]  # this call's frames against photos: (ms, value, d)


def live_frames_parse(frames: object):
    if not isinstance(frames, list) or not frames:
        raise InvalidInput(
            "frames: 1 to 60 frames [frame_number, quality, pdq_hex, timestamp_ms].",
            code="invalid",
            details={"field": "frames"},
        )
    if len(frames) > MAX_FRAMES_PER_CALL:
        raise InvalidInput(
            f"At most {MAX_FRAMES_PER_CALL} frames per call.",
            code="too_many_items",
            details={"limit": MAX_FRAMES_PER_CALL, "received": len(frames)},
        )
    try:
        return normalise_frames(frames, max_frames=MAX_FRAMES_PER_CALL)
    except FrameListError as exc:
        details = {"field": "frames"}
        if exc.index is not None:
            details["frame"] = exc.index
        raise InvalidInput(f"frames: {exc}", code="invalid_signal", details=details) from None


def live_frames_append(*, actor: Actor, session_id, frames: object) -> LiveAnswer:
    """Append a call's frames (the request's ``frames``, checked once the session is known to
    be the caller's: another member's session is 404 whatever the body) and answer with the
    alerts so far."""
    now = timezone.now()
    store = match_store()
    store.refresh()
    with transaction.atomic():
        session = _owned(actor, session_id, lock=True)
        if _is_idle(session, now):
            _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)
            answer = None  # the expiry commits, then the call is refused
        else:
            answer = _append(actor, session, live_frames_parse(frames), store, now)
    if answer is None:
        raise Conflict("This live session expired (idle): open a new one.", code="closed")
    return answer


def _append(actor: Actor, session: LiveSession, frames, store, now) -> LiveAnswer:
    """The call itself, under the session's row lock (the caller's transaction)."""
    if session.state != LiveSession.State.OPEN:
        raise Conflict("This live session is closed: open a new one.", code="closed")
    if frames.frames[0].timestamp_ms < session.last_timestamp_ms:
        raise InvalidInput(
            "Frames go back in time: timestamps must not decrease from one call to the next.",
            code="invalid_signal",
            details={"field": "frames", "frame": 0},
        )
    if session.frames_received + len(frames) > MAX_FRAMES_PER_SESSION:
        raise Conflict(
            f"A live session takes at most {MAX_FRAMES_PER_SESSION} frames: open a new one.",
            code="session_full",
            details={"limit": MAX_FRAMES_PER_SESSION},
        )
    new = _store_new_frames(session, frames)
    rematch = store.video_position > session.position
    searched = _all_frames(session) if rematch else new
    _add_evidence(session, store, searched)
    if rematch:
        session.position = store.position
    session.frames_received += len(frames)
    session.calls += 1
    session.last_call_at = now
    session.last_timestamp_ms = frames.frames[-1].timestamp_ms
    alerts = _alerts(session, store)
    newly = [a["value"] for a in alerts if a["value"] not in session.alerted]
    session.alerted = [*session.alerted, *newly]
    session.save()
    incidents = _active_incidents([a["value"] for a in alerts], now)
    for alert in alerts:
        alert["incident"] = incidents.get(alert["value"])
    if newly:
        data = {
            Key.ALERTS: newly,
            Key.FRAMES: session.frames_received,
            Key.CALLS: session.calls,
        }
        tagged = sorted({incidents[v] for v in newly if v in incidents})
        if tagged:
            data[Key.INCIDENT] = tagged
        audit_record(
            AuditRecord(
                action=Action.LIVE_ALERTED,
                actor=actor,
                organisation=session.organisation.slug,
                object_type=ObjectType.LIVE_SESSION,
                object_id=str(session.id),
                data=data,
            )
        )
    return LiveAnswer(session, alerts, _photo_hits(store, session, frames))


def _store_new_frames(session: LiveSession, frames) -> list[LiveFrame]:
    """The call's distinct frames of quality >= the floor not seen before in the session."""
    seen: set[str] = set()
    wanted = []
    for frame in frames.frames:
        if frame.quality >= session.frame_quality_min and frame.pdq not in seen:
            seen.add(frame.pdq)
            wanted.append(frame)
    if not wanted:
        return []
    known = set(
        LiveFrame.objects.filter(session=session, pdq__in=[f.pdq for f in wanted]).values_list(
            "pdq", flat=True
        )
    )
    return LiveFrame.objects.bulk_create(
        [
            LiveFrame(session=session, pdq=f.pdq, quality=f.quality, timestamp_ms=f.timestamp_ms)
            for f in wanted
            if f.pdq not in known
        ]
    )


def _all_frames(session: LiveSession) -> list[LiveFrame]:
    return list(LiveFrame.objects.filter(session=session).order_by("id"))


def _add_evidence(session: LiveSession, store, frames: list[LiveFrame]) -> None:
    if not frames:
        return
    hits = store.video.frame_hits(
        pdq_words([f.pdq for f in frames]),
        threshold=session.threshold,
        quality_min=session.frame_quality_min,
    )
    evidence = session.evidence
    for q, value, position, shared_ms, distance in hits:
        frame = frames[q]
        item = evidence.setdefault(
            value, {"stream": [], "shared": [], "first_ms": None, "last_ms": None, "best": []}
        )
        if frame.id not in item["stream"]:
            item["stream"].append(frame.id)
        if position not in item["shared"]:
            item["shared"].append(position)
        ms = frame.timestamp_ms
        item["first_ms"] = ms if item["first_ms"] is None else min(item["first_ms"], ms)
        item["last_ms"] = ms if item["last_ms"] is None else max(item["last_ms"], ms)
        pair = [ms, shared_ms, distance]
        if pair not in item["best"]:
            item["best"] = sorted([*item["best"], pair], key=lambda p: (p[2], p[0], p[1]))[
                :BEST_PAIRS
            ]


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
    """The documented rule (module docstring), in integers where it compares."""
    if matched_stream < min_frames or shared_frames == 0:
        return False
    fraction = 1.0 if duration_ms <= 0 else min(1.0, span_ms / duration_ms)
    expected = min(matched_stream, shared_frames * fraction)
    return matched_shared * 100 >= math.ceil(coverage * expected)


def _alerts(session: LiveSession, store) -> list[dict]:
    alerts = []
    for value, item in session.evidence.items():
        if store.video.state_of(value) is None:
            continue  # left the shared set
        shared_frames = store.video.distinct_count(value, quality_min=session.frame_quality_min)
        span = (item["last_ms"] or 0) - (item["first_ms"] or 0)
        if alert_rule_met(
            matched_stream=len(item["stream"]),
            matched_shared=len(item["shared"]),
            span_ms=span,
            shared_frames=shared_frames,
            duration_ms=store.video.duration_ms(value),
            min_frames=session.min_frames,
            coverage=session.coverage,
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


def _active_incidents(values: list[str], now) -> dict[str, str]:
    """The name of an active incident each video entry is tagged with (by a contribution)."""
    if not values:
        return {}
    rows = (
        Contribution.objects.filter(
            entry__signal_type=SignalType.VPDQ,
            entry__value__in=values,
            incident__isnull=False,
            incident__started_at__lte=now,
        )
        .filter(Q(incident__ended_at__isnull=True) | Q(incident__ended_at__gt=now))
        .values_list("entry__value", "incident__name")
        .order_by("incident__started_at")
    )
    return dict(rows)


def _photo_hits(store, session: LiveSession, frames) -> list[tuple[int, str, int]]:
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
