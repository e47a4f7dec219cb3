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

A frames call is on a stream's hot path (one a second per stream, 5 ms of server time at most,
docs/video.md "Measured"), and its cost is PostgreSQL round trips: on a loaded machine each one
waits for the database backend to be scheduled, and a durable commit for an fsync. So a call
makes **one statement when this worker served the session's previous call, two otherwise**, and
no explicit transaction:

1. (when this worker does not hold the session's state from its previous call) one read, ``_read``:
   the session's state, which of the call's hashes it already holds, its evidence for the videos
   this call's frames hit and for those that already alerted (not the rest), and the
   change-stream position (is this process's index behind?);
2. one conditional write, ``_write``: ``UPDATE ... WHERE calls = <the version the state is at>
   AND state = 'open'`` (and, from kept state, none of the call's frames already held, the change
   stream not past the index), with the new frames inserted by the same statement, returning the
   active incidents of the alerting videos. ``calls`` is the session's version: a concurrent call
   of the same session (another worker) makes the write match no row, and the call starts again
   from a read. The last attempt reads under the row lock (``SELECT ... FOR UPDATE`` in a
   transaction), so a call always ends.

The frames are searched first, with the session's matching settings, which never change once it
is open (``_fixed_settings``, kept per process). Evidence is written only for the videos the call
touched (``evidence || patch``), so a call costs O(its new frames), not O(the session). The write
commits asynchronously (``synchronous_commit`` off for that statement alone): it is visible to
every worker at once, survives a worker restart, and is durable within a fraction of a second;
only a crash of PostgreSQL itself in that window could lose the last calls' state, never half of
one. A call that raises an alert writes the state and its ``live.alerted`` event in one ordinary,
durable transaction.
"""

import bisect
import contextlib
import functools
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import orjson
from django.db import connection, transaction
from django.utils import timezone

from federation.contributions.models import Contribution, Entry
from federation.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from federation.live.models import LiveFrame, LiveSession
from federation.matching.index import MAX_THRESHOLD, pdq_words, words_hex
from federation.matching.store import match_store
from federation.matching.video import DEFAULT_QUALITY_MIN, distinct_frames
from federation.sync.models import SyncState
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.vetting.models import Incident
from federation.video.frames import Frame, FrameListError, normalise_frames
from members.actors import Actor

MAX_FRAMES_PER_CALL = 60
MAX_FRAMES_PER_SESSION = 7_200  # two hours at one frame a second
MAX_OPEN_SESSIONS = 10  # per member organisation
IDLE_SECONDS = 300  # a session with no call for this long expires
DEFAULT_MIN_FRAMES = 5
DEFAULT_COVERAGE = 50
MIN_FRAMES_MAX = 600
BEST_PAIRS = 10
APPEND_ATTEMPTS = 3  # conditional writes of a frames call; the last one holds the row lock


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
    _WARM.pop((session.organisation_id, session.id), None)
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
    _remember_settings(organisation.pk, session.pk, settings)
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
    session_id, fixed = _fixed_settings(organisation, session_id)
    parsed = live_frames_parse(frames)
    store = match_store()
    kept = _kept_distinct(parsed, fixed.frame_quality_min)
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
    key = (organisation.pk, session_id)
    pdqs = [f.pdq for f in kept]
    hits = _frame_hits(store, fixed, pdqs)
    values = sorted({hit[1] for hit in hits})
    warm = None if locked else _WARM.pop(key, None)
    if warm is not None and not warm.serves(values, store, timezone.now()):
        warm = None
    read = warm
    for reading in range(0 if warm else 2):
        read = _read(
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
        hits = _frame_hits(store, fixed, pdqs)
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
        touched = _add_evidence(
            evidence,
            _frame_hits(store, fixed, [pdq for pdq, _ in stream]),
            [ms for _, ms in stream],
        )
        candidates = set(evidence)
        covered = None  # all of it
        position = store.position
    else:
        evidence = read.evidence
        fresh = set(new)
        touched = _add_evidence(
            evidence,
            [hit for hit in hits if hit[0] in fresh],
            [frame.timestamp_ms for frame in kept],
        )
        candidates = touched | set(read.alerted)
        covered = None if read.covered is None else read.covered | set(values)
        position = None
    alerts = _alerts({v: evidence[v] for v in candidates if v in evidence}, fixed, store)
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
        _write,
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
    _keep(key, session, evidence, covered)
    return LiveAnswer(session, alerts, _photo_hits(store, session, frames))


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


# --- the session's fixed settings, per process ---------------------------------------------------

_FIXED: dict[tuple[int, uuid.UUID], LiveSettings] = {}
_FIXED_MAX = 10_000


def _remember_settings(organisation_id: int, session_id: uuid.UUID, settings: LiveSettings):
    if len(_FIXED) >= _FIXED_MAX:
        _FIXED.clear()  # a cache of facts that never change: starting again costs one read each
    _FIXED[(organisation_id, session_id)] = settings


def _fixed_settings(organisation, session_id) -> tuple[uuid.UUID, LiveSettings]:
    """The session's matching settings (fixed when it opened), by the caller's organisation:
    another member's session is not found."""
    try:
        session_id = session_id if isinstance(session_id, uuid.UUID) else uuid.UUID(session_id)
    except (TypeError, ValueError, AttributeError):
        raise NotFound("No such live session.", code="not_found") from None
    settings = _FIXED.get((organisation.pk, session_id))
    if settings is None:
        row = (
            LiveSession.objects.filter(pk=session_id, organisation=organisation)
            .values_list("threshold", "frame_quality_min", "min_frames", "coverage")
            .first()
        )
        if row is None:
            raise NotFound("No such live session.", code="not_found")
        settings = LiveSettings(*row)
        _remember_settings(organisation.pk, session_id, settings)
    return session_id, settings


def forget_kept_state() -> None:
    """Forget what this process keeps of sessions, settings and state (tests: a new worker)."""
    _FIXED.clear()
    _WARM.clear()


# --- the two statements -----------------------------------------------------------------------


def _tables() -> dict[str, str]:
    return {
        "session": LiveSession._meta.db_table,
        "frame": LiveFrame._meta.db_table,
        "contribution": Contribution._meta.db_table,
        "entry": Entry._meta.db_table,
        "incident": Incident._meta.db_table,
        "sync": SyncState._meta.db_table,
    }


# ``values``: the videos this call's frames hit. The evidence read is theirs and that of the
# videos that already alerted, which are the only ones that can alert on this call (an untouched
# video's evidence did not change); after the index took new videos (``position`` behind) the
# whole stream is matched again instead, so its frames are read and no evidence is.
_READ_SQL = """
SELECT s.state, s.opened_at, s.last_call_at, s.frames_received, s.calls, s.last_timestamp_ms,
       s.position, s.alerted::text,
       CASE WHEN s.position >= %(video_position)s THEN (
           SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}'::jsonb)::text
             FROM jsonb_each(s.evidence) AS e
            WHERE e.key = ANY(%(values)s::text[]
                              || ARRAY(SELECT jsonb_array_elements_text(s.alerted))))
       END,
       ARRAY(SELECT u.pdq FROM unnest(%(pdqs)s::text[]) AS u(pdq)
              WHERE EXISTS (SELECT FROM {frame} AS f WHERE f.session_id = s.id AND f.pdq = u.pdq)),
       CASE WHEN s.position < %(video_position)s THEN (
           SELECT coalesce(jsonb_agg(jsonb_build_array(f.pdq, f.timestamp_ms) ORDER BY f.id),
                           '[]'::jsonb)::text
             FROM {frame} AS f WHERE f.session_id = s.id)
       END,
       (SELECT y.last_position FROM {sync} AS y WHERE y.id = 1)
  FROM {session} AS s
 WHERE s.id = %(id)s AND s.organisation_id = %(organisation)s
"""


@dataclass(frozen=True)
class _Read:
    """A session's state, as read or as this worker's previous call of it left it."""

    state: str
    opened_at: object
    last_call_at: object
    frames_received: int
    calls: int
    last_timestamp_ms: int
    position: int
    alerted: list[str]
    evidence: dict | None  # the videos asked for (None when the stream is matched again)
    covered: set | None  # the videos whose evidence ``evidence`` holds if any (None: all)
    known: list[str]  # the call's hashes the session already holds
    all_frames: list | None  # [[pdq, ms], ...] when the stream is matched again, else None
    stream_position: int

    def serves(self, values: list[str], store, now) -> bool:
        """Whether kept state can take a call hitting these videos: not idle, no video added
        to the index since (that needs every frame), and the evidence of each of them known."""
        return (
            self.last_call_at >= now - timedelta(seconds=IDLE_SECONDS)
            and store.video_position <= self.position
            and (self.covered is None or self.covered.issuperset(values))
        )


def _read(session_id, organisation_id, *, values, pdqs, video_position, lock) -> _Read:
    sql = _READ_SQL.format(**_tables()) + (" FOR UPDATE OF s" if lock else "")
    params = {
        "id": session_id,
        "organisation": organisation_id,
        "values": values,
        "pdqs": pdqs,
        "video_position": video_position,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:  # gone since its settings were read: not the caller's to see
        raise NotFound("No such live session.", code="not_found")
    alerted = orjson.loads(row[7])
    return _Read(
        state=row[0],
        opened_at=row[1],
        last_call_at=row[2],
        frames_received=row[3],
        calls=row[4],
        last_timestamp_ms=row[5],
        position=row[6],
        alerted=alerted,
        evidence=None if row[8] is None else orjson.loads(row[8]),
        covered=set(values) | set(alerted),
        known=row[9],
        all_frames=None if row[10] is None else orjson.loads(row[10]),
        stream_position=row[11] or 0,
    )


# --- state kept between calls, per worker ---------------------------------------------------

_WARM: dict[tuple[int, uuid.UUID], _Read] = {}
_WARM_MAX = 1_000


def _keep(key, session: LiveSession, evidence: dict, covered: set | None) -> None:
    """Keep the state this call wrote, for this worker's next call of the session: that call
    then needs no read (its write checks that nobody wrote in between)."""
    if len(_WARM) >= _WARM_MAX:
        _WARM.pop(next(iter(_WARM), None), None)
    _WARM[key] = _Read(
        state=session.state,
        opened_at=session.opened_at,
        last_call_at=session.last_call_at,
        frames_received=session.frames_received,
        calls=session.calls,
        last_timestamp_ms=session.last_timestamp_ms,
        position=session.position,
        alerted=list(session.alerted),
        evidence=evidence,
        covered=covered,
        known=[],
        all_frames=None,
        stream_position=0,
    )


_INCIDENTS_SQL = """
(SELECT coalesce(jsonb_agg(jsonb_build_array(e.value, i.name) ORDER BY i.started_at),
                 '[]'::jsonb)::text
   FROM {contribution} AS c
   JOIN {entry} AS e ON e.id = c.entry_id
   JOIN {incident} AS i ON i.id = c.incident_id
  WHERE e.signal_type = 'vpdq' AND e.value = ANY(%(incidents_of)s::text[])
    AND i.started_at <= %(now)s AND (i.ended_at IS NULL OR i.ended_at > %(now)s))
"""


def _write(
    session: LiveSession,
    *,
    version: int,
    new_frames: list,
    evidence: dict,
    replace_evidence: bool,
    position: int | None,
    alerted: list[str] | None,
    incidents_of: list[str],
    unknown_frames: list[str] | None,
    store_position: int | None,
    durable: bool,
) -> dict[str, str] | None:
    """The call's changes in one statement, if the session is still at ``version`` and open,
    none of ``unknown_frames`` is among its frames, and the change stream is not past
    ``store_position`` (the index answered from its latest state); the active incidents of the
    videos ``incidents_of`` (value -> the latest started incident's name). None when a
    condition failed (another call wrote first, the session was closed, the index is behind).
    """
    tables = _tables()
    sets = [
        "calls = %(calls)s",
        "frames_received = %(frames_received)s",
        "last_call_at = %(now)s",
        "last_timestamp_ms = %(last_timestamp_ms)s",
    ]
    params = {
        "id": session.id,
        "version": version,
        "calls": session.calls,
        "frames_received": session.frames_received,
        "now": session.last_call_at,
        "last_timestamp_ms": session.last_timestamp_ms,
        "incidents_of": incidents_of,
    }
    if position is not None:
        sets.append("position = %(position)s")
        params["position"] = position
    if replace_evidence:
        sets.append("evidence = %(evidence)s::jsonb")
        params["evidence"] = orjson.dumps(evidence).decode()
    elif evidence:
        sets.append("evidence = evidence || %(evidence)s::jsonb")
        params["evidence"] = orjson.dumps(evidence).decode()
    if alerted is not None:
        sets.append("alerted = %(alerted)s::jsonb")
        params["alerted"] = orjson.dumps(alerted).decode()
    conditions = ["id = %(id)s", "calls = %(version)s", "state = 'open'"]
    if unknown_frames:
        conditions.append(
            f"NOT EXISTS (SELECT FROM {tables['frame']} AS f"
            " WHERE f.session_id = %(id)s AND f.pdq = ANY(%(unknown)s::text[]))"
        )
        params["unknown"] = unknown_frames
    if store_position is not None:
        conditions.append(
            f"coalesce((SELECT y.last_position FROM {tables['sync']} AS y WHERE y.id = 1), 0)"  # noqa: S608
            " <= %(store_position)s"
        )
        params["store_position"] = store_position
    sql = (
        f"WITH s AS (UPDATE {tables['session']} SET {', '.join(sets)}"  # noqa: S608 (fixed names)
        f" WHERE {' AND '.join(conditions)} RETURNING id)"
    )
    if new_frames:
        sql += (
            f", f AS (INSERT INTO {tables['frame']} (session_id, pdq, quality, timestamp_ms)"  # noqa: S608
            " SELECT s.id, u.pdq, u.quality, u.ms FROM s,"
            " unnest(%(pdqs)s::text[], %(qualities)s::int[], %(ms)s::bigint[])"
            " AS u(pdq, quality, ms) ON CONFLICT (session_id, pdq) DO NOTHING)"
        )
        params["pdqs"] = [f.pdq for f in new_frames]
        params["qualities"] = [f.quality for f in new_frames]
        params["ms"] = [f.timestamp_ms for f in new_frames]
    # Asynchronous commit for this statement's own transaction only (module docstring); a call
    # that writes an audit event runs in a transaction of its own and commits durably.
    sql += " SELECT " + ("s.id" if durable else "set_config('synchronous_commit', 'off', true)")
    sql += ", " + (_INCIDENTS_SQL.format(**tables) if incidents_of else "'[]'") + " FROM s"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else dict(orjson.loads(row[1]))


# --- matching -----------------------------------------------------------------------------------


def _kept_distinct(frames, quality_min: int) -> list[Frame]:
    """The call's distinct frames (by hash, the first of each) of quality >= the floor."""
    seen: set[str] = set()
    kept = []
    for frame in frames.frames:
        if frame.quality >= quality_min and frame.pdq not in seen:
            seen.add(frame.pdq)
            kept.append(frame)
    return kept


def _frame_hits(store, fixed: LiveSettings, pdqs: list[str]) -> list[tuple]:
    if not pdqs:
        return []
    return store.video.frame_hits(
        pdq_words(pdqs), threshold=fixed.threshold, quality_min=fixed.frame_quality_min
    )


def _add_evidence(evidence: dict, hits, stream_ms: list[int]) -> set[str]:
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
    """The documented rule (module docstring), in integers where it compares."""
    if matched_stream < min_frames or shared_frames == 0:
        return False
    fraction = 1.0 if duration_ms <= 0 else min(1.0, span_ms / duration_ms)
    expected = min(matched_stream, shared_frames * fraction)
    return matched_shared * 100 >= math.ceil(coverage * expected)


def _alerts(evidence: dict, fixed: LiveSettings, store) -> list[dict]:
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
