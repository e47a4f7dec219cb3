"""Live-stream sessions (docs/video.md, "Live streams"): open, append frames, show, close, and
expire when idle; the limits of a session and the checks of what a member sends.

Each call that changes a session runs in one transaction holding the session's row lock, and
writes its audit event inside it, in aggregate: ``live.opened``, ``live.alerted`` (only on a call
where a shared video newly meets the alert rule), ``live.closed`` (closed or expired). The
frames themselves are never audited.

A frames call is on a stream's hot path (one a second per stream, 5 ms of server time at most,
docs/video.md "Measured"), and its cost is PostgreSQL round trips: on a loaded machine each one
waits for the database backend to be scheduled, and a durable commit for an fsync. So a call
makes **one statement when this worker served the session's previous call, two otherwise**, and
no explicit transaction: the state its session's previous call left here, or one read, then one
conditional write, tried again from a read when another worker wrote first, the last attempt
under the row lock (``federation.live.session_state``). The frames are searched first, with the
session's matching settings, which never change once it is open; the evidence and the alert
rule are ``federation.live.evidence``. A call that raises an alert writes the state and its
``live.alerted`` event in one ordinary, durable transaction. On any other database (the
embedded SQLite of ``make demo``) the same read and conditional write are made with the ORM
(``federation.live.portable_state``): the same rules, a few statements a call.
"""

import contextlib
import functools
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from federation.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from federation.live import portable_state, session_state
from federation.live.evidence import (
    DEFAULT_COVERAGE,
    DEFAULT_MIN_FRAMES,
    LiveSettings,
    add_evidence,
    frame_hits,
    kept_distinct,
    photo_hits,
    session_alerts,
)
from federation.live.models import LiveFrame, LiveSession
from federation.matching.index import MAX_THRESHOLD
from federation.matching.store import match_store
from federation.matching.video import DEFAULT_QUALITY_MIN
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.video.frames import FrameListError, normalise_frames
from members.actors import Actor

MAX_FRAMES_PER_CALL = 60
MAX_FRAMES_PER_SESSION = 7_200  # two hours at one frame a second
MAX_OPEN_SESSIONS = 10  # per member organisation
IDLE_SECONDS = 300  # a session with no call for this long expires
MIN_FRAMES_MAX = 600
APPEND_ATTEMPTS = 3  # conditional writes of a frames call; the last one holds the row lock


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


def live_sessions_expire_idle(*, now=None, batch: int = 100) -> int:
    """Close (as ``expired``) every open session idle past ``IDLE_SECONDS``, each with its
    ``live.closed`` event, in transactions of at most ``batch`` sessions; returns how many. Run by
    beat (``federation.live.expire_idle_sessions``) and before a session opens. A session another
    transaction holds (a call in its locked attempt, a close) is skipped: its holder decides."""
    now = now or timezone.now()
    closed = 0
    while True:
        with transaction.atomic():
            idle = list(
                LiveSession.objects.filter(
                    state=LiveSession.State.OPEN,
                    last_call_at__lt=now - timedelta(seconds=IDLE_SECONDS),
                )
                .select_related("organisation")
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("last_call_at")[:batch]
            )
            for session in idle:
                _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)
        closed += len(idle)
        if len(idle) < batch:
            return closed


def _close(session: LiveSession, actor: Actor, state: str, now) -> None:
    session_state.forget(session.organisation_id, session.id)
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


def _state_store():
    """Where a frames call reads and writes its session: PostgreSQL's one-statement SQL
    (``session_state``), or the ORM on any other database, the demo's SQLite
    (``portable_state``): same conditions, same answers, a few statements more."""
    return session_state if connection.vendor == "postgresql" else portable_state


def live_session_open(*, actor: Actor, settings: LiveSettings) -> LiveSession:
    organisation = _organisation(actor)
    now = timezone.now()
    live_sessions_expire_idle(now=now)
    with transaction.atomic():
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
    session_state.remember_settings(organisation.pk, session.pk, settings)
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
    organisation = _organisation(actor)
    session_id, fixed = session_state.fixed_settings(organisation, session_id)
    parsed = live_frames_parse(frames)
    store = match_store()
    kept = kept_distinct(parsed, fixed.frame_quality_min)
    for attempt in range(APPEND_ATTEMPTS):
        locked = attempt == APPEND_ATTEMPTS - 1
        with transaction.atomic() if locked else contextlib.nullcontext():
            answer = _attempt(actor, session_id, fixed, parsed, kept, store, locked=locked)
        if answer is _EXPIRED:
            raise Conflict("This live session expired (idle): open a new one.", code="closed")
        if answer is not None:
            return answer
    raise AssertionError("the locked attempt always writes")  # pragma: no cover


_EXPIRED = object()


def _attempt(actor: Actor, session_id, fixed: LiveSettings, frames, kept, store, *, locked: bool):
    """The session's state (kept from this worker's previous call of it, else read), the
    matching, one conditional write; None when the write found the session moved on (the caller
    tries again, reading), ``_EXPIRED`` when the session was found idle (and has just been
    closed)."""
    organisation = actor.organisation
    state_store = _state_store()
    key = (organisation.pk, session_id)
    pdqs = [f.pdq for f in kept]
    hits = frame_hits(store, fixed, pdqs)
    values = sorted({hit[1] for hit in hits})
    warm = None if locked else session_state.take(key)
    if warm is not None and not warm.serves(
        values, store, timezone.now() - timedelta(seconds=IDLE_SECONDS)
    ):
        warm = None
    read = warm
    for reading in range(0 if warm else 2):
        read = state_store.read(
            session_id,
            organisation.pk,
            values=values,
            pdqs=pdqs,
            video_position=store.video_position,
            lock=locked,
        )
        if read.stream_position <= store.position or reading == 1:
            break
        store.refresh()  # the index is behind the stream: catch up, then search and read again
        hits = frame_hits(store, fixed, pdqs)
        values = sorted({hit[1] for hit in hits})
    now = timezone.now()
    if read.state != LiveSession.State.OPEN:
        raise Conflict("This live session is closed: open a new one.", code="closed")
    if read.last_call_at < now - timedelta(seconds=IDLE_SECONDS):
        _expire(session_id, now)
        return _EXPIRED
    if frames.frames[0].timestamp_ms < read.last_timestamp_ms:
        raise InvalidInput(
            "Frames go back in time: timestamps must not decrease from one call to the next.",
            code="invalid_signal",
            details={"field": "frames", "frame": 0},
        )
    if read.frames_received + len(frames) > MAX_FRAMES_PER_SESSION:
        raise Conflict(
            f"A live session takes at most {MAX_FRAMES_PER_SESSION} frames: open a new one.",
            code="session_full",
            details={"limit": MAX_FRAMES_PER_SESSION},
        )
    # Kept state does not list the session's frames: the write checks that none of the call's
    # is among them (and fails, for a read, if one is).
    known = set(read.known)
    new = [q for q, frame in enumerate(kept) if frame.pdq not in known]
    if read.all_frames is not None:
        # The index took videos since these frames were matched: match them all again.
        stream = [(pdq, ms) for pdq, ms in read.all_frames]
        stream += [(kept[q].pdq, kept[q].timestamp_ms) for q in new]
        evidence: dict = {}
        touched = add_evidence(
            evidence,
            frame_hits(store, fixed, [pdq for pdq, _ in stream]),
            [ms for _, ms in stream],
        )
        candidates = set(evidence)
        covered = None  # all of it
        position = store.position
    else:
        evidence = read.evidence
        fresh = set(new)
        touched = add_evidence(
            evidence,
            [hit for hit in hits if hit[0] in fresh],
            [frame.timestamp_ms for frame in kept],
        )
        candidates = touched | set(read.alerted)
        covered = None if read.covered is None else read.covered | set(values)
        position = None
    alerts = session_alerts({v: evidence[v] for v in candidates if v in evidence}, fixed, store)
    newly = [a["value"] for a in alerts if a["value"] not in read.alerted]
    session = LiveSession(
        id=session_id,
        organisation=organisation,
        state=LiveSession.State.OPEN,
        opened_at=read.opened_at,
        last_call_at=now,
        threshold=fixed.threshold,
        frame_quality_min=fixed.frame_quality_min,
        min_frames=fixed.min_frames,
        coverage=fixed.coverage,
        frames_received=read.frames_received + len(frames),
        calls=read.calls + 1,
        last_timestamp_ms=frames.frames[-1].timestamp_ms,
        position=read.position if position is None else position,
        alerted=[*read.alerted, *newly],
    )
    write = functools.partial(
        state_store.write,
        session,
        version=read.calls,
        new_frames=[kept[q] for q in new],
        evidence={v: evidence[v] for v in touched},
        replace_evidence=read.all_frames is not None,
        position=position,
        alerted=session.alerted if newly else None,
        incidents_of=[a["value"] for a in alerts],
        unknown_frames=pdqs if warm else None,
        store_position=None if locked else store.position,
    )
    if not newly:
        incidents = write(durable=False)
    else:
        with transaction.atomic():
            incidents = write(durable=True)
            if incidents is not None:
                _audit_alerted(actor, session, newly, incidents)
    if incidents is None:
        if locked:
            raise AssertionError("a locked session was written by another call")
        return None
    for alert in alerts:
        alert["incident"] = incidents.get(alert["value"])
    session_state.keep(key, session, evidence, covered)
    return LiveAnswer(session, alerts, photo_hits(store, session, frames))


def _audit_alerted(actor: Actor, session: LiveSession, newly: list[str], incidents) -> None:
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


def _expire(session_id, now) -> None:
    """Close an idle session under its row lock (if it is still open and idle by then)."""
    with transaction.atomic():
        session = (
            LiveSession.objects.select_related("organisation")
            .select_for_update(of=("self",))
            .get(pk=session_id)
        )
        if _is_idle(session, now):
            _close(session, Actor.system("live"), LiveSession.State.EXPIRED, now)
