"""A live session's state on the frames path (docs/video.md, "Live streams"): what this worker
keeps of its sessions between calls, the one read a call makes when it does not hold the state,
and the one conditional write that stores the call's changes.

A frames call (``federation.live.services.live_frames_append``) gets its session's state either
from this worker's previous call of it (no statement) or from ``read``, then writes with
``write``: on condition that the session is still at the version the state is at (``calls``)
and open, with the new frames inserted by the same statement, returning the active incidents of
the alerting videos. A concurrent call of the same session (another worker) makes the write
match no row, and the call starts again from a read; the last attempt reads under the row lock,
so a call always ends. From kept state the write also checks that none of the call's frames is
already held and that the change stream is not past the index that searched them.

Evidence is written only for the videos the call touched (``evidence || patch``). The write
commits asynchronously (``synchronous_commit`` off for that statement alone): it is visible to
every worker at once, survives a worker restart, and is durable within a fraction of a second;
only a crash of PostgreSQL itself in that window could lose the last calls' state, never half of
one. A call that raises an alert writes with ``durable`` inside its own ordinary transaction.

Kept per process, each bounded: every session's matching settings (fixed once it is open) and
the state each session's last call here left. Both are only a saving: a new worker reads.
"""

import uuid
from dataclasses import dataclass

import orjson
from django.db import connection

from federation.contributions.models import Contribution, Entry
from federation.errors import NotFound
from federation.live.evidence import LiveSettings
from federation.live.models import LiveFrame, LiveSession
from federation.sync.models import SyncState
from federation.vetting.models import Incident

# --- the session's fixed settings ---------------------------------------------------------------

_FIXED: dict[tuple[int, uuid.UUID], LiveSettings] = {}
_FIXED_MAX = 10_000


def remember_settings(organisation_id: int, session_id: uuid.UUID, settings: LiveSettings) -> None:
    """Keep a session's settings (as it opens: its calls here need no read of them)."""
    if len(_FIXED) >= _FIXED_MAX:
        _FIXED.clear()  # a cache of facts that never change: starting again costs one read each
    _FIXED[(organisation_id, session_id)] = settings


def fixed_settings(organisation, session_id) -> tuple[uuid.UUID, LiveSettings]:
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
        remember_settings(organisation.pk, session_id, settings)
    return session_id, settings


def forget_kept_state() -> None:
    """Forget what this process keeps of sessions, settings and state (tests: a new worker)."""
    _FIXED.clear()
    _WARM.clear()


# --- the read -----------------------------------------------------------------------------------


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
class SessionState:
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

    def serves(self, values: list[str], store, idle_before) -> bool:
        """Whether kept state can take a call hitting these videos: not idle, no video added
        to the index since (that needs every frame), and the evidence of each of them known."""
        return (
            self.last_call_at >= idle_before
            and store.video_position <= self.position
            and (self.covered is None or self.covered.issuperset(values))
        )


def read(session_id, organisation_id, *, values, pdqs, video_position, lock) -> SessionState:
    """The session's state for a call that does not hold it (module docstring), under the row
    lock when ``lock``; 404 when the session is gone."""
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
    return SessionState(
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


# --- state kept between calls ---------------------------------------------------------------------

_WARM: dict[tuple[int, uuid.UUID], SessionState] = {}
_WARM_MAX = 1_000


def keep(key, session: LiveSession, evidence: dict, covered: set | None) -> None:
    """Keep the state this call wrote, for this worker's next call of the session: that call
    then needs no read (its write checks that nobody wrote in between)."""
    if len(_WARM) >= _WARM_MAX:
        _WARM.pop(next(iter(_WARM), None), None)
    _WARM[key] = SessionState(
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


def take(key) -> SessionState | None:
    """The state this worker's previous call of the session left, no longer kept (a call that
    uses it keeps what it writes)."""
    return _WARM.pop(key, None)


def forget(organisation_id: int, session_id) -> None:
    """Forget the kept state of a session (it closed)."""
    _WARM.pop((organisation_id, session_id), None)


# --- the write -------------------------------------------------------------------------------

_INCIDENTS_SQL = """
(SELECT coalesce(jsonb_agg(jsonb_build_array(e.value, i.name) ORDER BY i.started_at),
                 '[]'::jsonb)::text
   FROM {contribution} AS c
   JOIN {entry} AS e ON e.id = c.entry_id
   JOIN {incident} AS i ON i.id = c.incident_id
  WHERE e.signal_type = 'vpdq' AND e.value = ANY(%(incidents_of)s::text[])
    AND i.started_at <= %(now)s AND (i.ended_at IS NULL OR i.ended_at > %(now)s))
"""


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
