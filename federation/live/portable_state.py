"""A live session's read and conditional write on any database but PostgreSQL: the ORM
counterpart of ``federation.live.session_state``'s SQL, used on the embedded SQLite database of
``make demo`` (docs/video.md, "Live streams").

Same signatures, same answers, same conditions; only the cost differs (a few statements a call
instead of one). The write is one transaction that starts with the conditional update of the
session (still at the version read, and open): that update takes the write lock (SQLite's
database lock, another database's row lock), so a concurrent call of the session either wrote
before it (no row matches: the call reads again) or waits for it; the other conditions (none of
the call's frames already held, the change stream not past the index) and the merge of the
evidence are then read under that lock, and a failed condition rolls the whole write back.
"""

from django.db import transaction
from django.db.models import F, Q

from federation.contributions.models import Contribution
from federation.errors import NotFound
from federation.live.models import LiveFrame, LiveSession
from federation.live.session_state import SessionState
from federation.sync.models import SyncState

_FIELDS = (
    "state",
    "opened_at",
    "last_call_at",
    "frames_received",
    "calls",
    "last_timestamp_ms",
    "position",
    "alerted",
    "evidence",
)


def _stream_position() -> int:
    return SyncState.objects.filter(pk=1).values_list("last_position", flat=True).first() or 0


def read(session_id, organisation_id, *, values, pdqs, video_position, lock) -> SessionState:
    """The session's state for a call that does not hold it, as ``session_state.read``; with
    ``lock`` (inside the caller's transaction) the session is locked first by an update that
    changes nothing, the one lock every database takes the same way."""
    session = LiveSession.objects.filter(pk=session_id, organisation_id=organisation_id)
    if lock:
        session.update(calls=F("calls"))
    row = session.values(*_FIELDS).first()
    if row is None:  # gone since its settings were read: not the caller's to see
        raise NotFound("No such live session.", code="not_found")
    alerted = list(row["alerted"])
    asked = set(values) | set(alerted)
    matched_again = row["position"] < video_position
    frames = LiveFrame.objects.filter(session_id=session_id)
    return SessionState(
        state=row["state"],
        opened_at=row["opened_at"],
        last_call_at=row["last_call_at"],
        frames_received=row["frames_received"],
        calls=row["calls"],
        last_timestamp_ms=row["last_timestamp_ms"],
        position=row["position"],
        alerted=alerted,
        evidence=None
        if matched_again
        else {k: v for k, v in row["evidence"].items() if k in asked},
        covered=asked,
        known=list(frames.filter(pdq__in=pdqs).values_list("pdq", flat=True)) if pdqs else [],
        all_frames=[list(f) for f in frames.order_by("id").values_list("pdq", "timestamp_ms")]
        if matched_again
        else None,
        stream_position=_stream_position(),
    )


class _Refused(Exception):
    """A condition of the write failed after its update: roll the write back."""


def write(
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
    durable: bool,  # every commit here is durable
) -> dict[str, str] | None:
    """The call's changes if the session is still at ``version`` and open, none of
    ``unknown_frames`` is among its frames and the change stream is not past
    ``store_position``; the active incidents of ``incidents_of`` (value -> the latest started
    incident's name), or None when a condition failed (``session_state.write``)."""
    changes = {
        "calls": session.calls,
        "frames_received": session.frames_received,
        "last_call_at": session.last_call_at,
        "last_timestamp_ms": session.last_timestamp_ms,
    }
    if position is not None:
        changes["position"] = position
    if replace_evidence:
        changes["evidence"] = evidence
    if alerted is not None:
        changes["alerted"] = alerted
    rows = LiveSession.objects.filter(pk=session.id)
    try:
        with transaction.atomic():
            if not rows.filter(calls=version, state=LiveSession.State.OPEN).update(**changes):
                return None  # another call wrote first, or the session closed
            held = LiveFrame.objects.filter(session_id=session.id)
            if unknown_frames and held.filter(pdq__in=unknown_frames).exists():
                raise _Refused
            if store_position is not None and _stream_position() > store_position:
                raise _Refused
            if evidence and not replace_evidence:
                stored = rows.values_list("evidence", flat=True).get()
                rows.update(evidence={**stored, **evidence})
            LiveFrame.objects.bulk_create(
                [
                    LiveFrame(
                        session_id=session.id,
                        pdq=frame.pdq,
                        quality=frame.quality,
                        timestamp_ms=frame.timestamp_ms,
                    )
                    for frame in new_frames
                ],
                ignore_conflicts=True,
            )
            return _active_incidents(incidents_of, session.last_call_at) if incidents_of else {}
    except _Refused:
        return None


def _active_incidents(values: list[str], now) -> dict[str, str]:
    tagged = (
        Contribution.objects.filter(
            entry__signal_type="vpdq",
            entry__value__in=values,
            incident__started_at__lte=now,
        )
        .filter(Q(incident__ended_at__isnull=True) | Q(incident__ended_at__gt=now))
        .order_by("incident__started_at")
        .values_list("entry__value", "incident__name")
    )
    return dict(tagged)
