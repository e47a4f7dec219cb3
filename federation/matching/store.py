"""The match index of this process, kept current from the member change stream (docs/matching.md).

At start (the first match request, or ``match_store()`` at boot) the shared set is read from
PostgreSQL in one REPEATABLE READ snapshot, with the stream position of that snapshot, exactly as
the sync export does (docs/sync.md, "Export then delta: no gap, overlap at most"). From then on
the store follows the stream with ``changes_after`` from its position and applies each change:
an upsert adds the signal or updates its state and quality, a removal takes it out. Applying a
change twice is harmless, so the overlap between snapshot and stream costs nothing.

Two paths keep it current, both incremental (the index is never rebuilt on a timer):
- a follower thread (``MATCH_FOLLOW``) polls the stream every ``MATCH_POLL_SECONDS``: it compares
  the stream's last position with the store's, and reads pages only when they differ;
- every match request first compares the stream's last position with the store's and, when
  behind, applies the missing pages itself (``refresh``), so a request never answers from a
  state older than the stream had when it arrived.
The only full reload is after the stream refuses the store's position as stale (compaction
removed a removal the store had not read), which cannot happen while it follows.

The store also keeps the matched entries as members see them (``rendered_entries``), so a batch
whose queries have a hundred results each is not rendered from PostgreSQL again on every request.
A kept rendering is never older than the database: each request asks which entries changed past
the store's position (change rows not yet applied, or not yet sequenced: one indexed query) and
renders those afresh; applying a change drops the entry's rendering; and a rendering read from
the database is kept only if no change was applied meanwhile.
"""

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import orjson
from django.conf import settings
from django.db import connection, connections, router, transaction
from django.db.models import Max, OuterRef, Subquery

from federation.contributions.models import SHARED_STATES, Contribution, Entry, SignalType
from federation.db.plans import bounded_query
from federation.db.prepared import SessionStatement
from federation.errors import Gone
from federation.matching.answers import warm_up_layout
from federation.matching.index import STATE_CODES, ExactIndex, PdqIndex, SortedResults, pdq_words
from federation.matching.kept import KeptSpans
from federation.matching.video import VideoIndex, distinct_from_canonical
from federation.sync.models import EntryChange, SyncState
from federation.sync.stream import changes_after, stream_state
from federation.transparency.audit import AUDIT_INSERT_SQL
from federation.transparency.models import AuditEvent
from federation.video.models import VideoFrames

logger = logging.getLogger(__name__)

PAGE = 10_000
LOAD_CHUNK = 50_000
# Entries kept rendered (about 440 bytes each as JSON bytes, their value and their slot); past
# this the store forgets them all and starts again: a cache, not a copy of the shared set.
RENDERED_MAX = 200_000
CHANGED_MAX = 10_000


@dataclass(frozen=True)
class StoreStatus:
    position: int
    pdq: int
    md5: int
    sha256: int
    memory_bytes: int
    vpdq: int = 0
    vpdq_frames: int = 0
    vpdq_memory_bytes: int = 0


class MatchStore:
    def __init__(self) -> None:
        self.pdq = PdqIndex()
        self.exact = {"md5": ExactIndex(), "sha256": ExactIndex()}
        self.video = VideoIndex()
        self.position = 0
        # The position of the last change that added or removed a video: a live session whose
        # frames were matched before it matches them again (federation.live.services).
        self.video_position = 0
        self._apply_lock = threading.Lock()
        # signal type -> value -> the entry as members see it (``rendered_entries``): what the
        # renderer returned, ``(open JSON bytes, quality)`` for the match service, which
        # Python's cycle collector does not walk (federation.matching.answers)
        self._rendered: dict[str, dict[str, tuple]] = {}
        self._rendered_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Build every index from the database's shared set and take the snapshot's position."""
        alias = router.db_for_read(Entry)
        db = connections[alias]
        db.ensure_connection()
        postgresql = db.vendor == "postgresql"
        best_quality = (
            Contribution.objects.filter(
                entry_id=OuterRef("pk"),
                action=Contribution.Action.ADD,
                status=Contribution.Status.ACTIVE,
            )
            .order_by()
            .values("entry_id")
            .annotate(best=Max("quality"))
            .values("best")
        )
        nested = db.in_atomic_block
        with self._apply_lock, transaction.atomic(using=alias):
            if postgresql and not nested:  # one snapshot: the position and the rows agree
                with db.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            position = stream_state().last_position
            rows = (
                Entry.objects.filter(state__in=SHARED_STATES)
                .annotate(best=Subquery(best_quality))
                .values_list("signal_type", "value", "state", "best")
                .order_by()
            )
            pdq_values: list[str] = []
            pdq_quality: list[int] = []
            pdq_state: list[int] = []
            exact: dict[str, tuple[list[str], list[str]]] = {"md5": ([], []), "sha256": ([], [])}
            videos: dict[str, str] = {}
            for signal_type, value, state, quality in rows.iterator(chunk_size=LOAD_CHUNK):
                if signal_type == "pdq":
                    pdq_values.append(value)
                    pdq_quality.append(-1 if quality is None else quality)
                    pdq_state.append(STATE_CODES[state])
                elif signal_type in exact:
                    exact[signal_type][0].append(value)
                    exact[signal_type][1].append(state)
                elif signal_type == SignalType.VPDQ:
                    videos[value] = state
            video_rows = [
                (value, videos[value], distinct_from_canonical(text))
                for value, text in VideoFrames.objects.filter(
                    entry__signal_type=SignalType.VPDQ, entry__state__in=SHARED_STATES
                )
                .values_list("entry__value", "canonical")
                .order_by()
                .iterator(chunk_size=1000)
                if value in videos
            ]
        self.video.build(video_rows)
        self.pdq.build(
            pdq_words(pdq_values),
            np.asarray(pdq_quality, dtype=np.int16),
            np.asarray(pdq_state, dtype=np.uint8),
        )
        for signal_type, (values, states) in exact.items():
            self.exact[signal_type].build(values, states)
        self.pdq.warm_up()
        warm_up_layout()
        self._rendered = {}
        self._rendered_count = 0
        self.position = position
        self.video_position = position

    # --- following ----------------------------------------------------------------------------

    def catch_up(self, *, blocking: bool = True) -> int:
        """Apply every change after the store's position; returns how many were applied."""
        if not self._apply_lock.acquire(blocking=blocking):
            return 0
        try:
            applied = 0
            while True:
                try:
                    page = changes_after(after=self.position, limit=PAGE)
                except Gone:
                    logger.warning("match index position %s is stale; reloading", self.position)
                    self._apply_lock.release()
                    try:
                        self.load()
                    finally:
                        self._apply_lock.acquire()
                    continue
                changes = [orjson.loads(item) for item in page.items]
                video_values = [
                    c["signal"]["value"] for c in changes if c["signal"]["type"] == "vpdq"
                ]
                frames = _video_frames(video_values)
                for change in changes:
                    self.apply(change, video_frames=frames)
                if video_values:
                    self.video_position = page.position
                applied += len(page.items)
                self.position = page.position
                if not page.more:
                    return applied
        finally:
            self._apply_lock.release()

    def refresh(self, *, blocking: bool = True) -> None:
        """Catch up if the stream is ahead of the store (one cheap query when it is not: the
        stream's state row, by primary key; no page is read)."""
        if stream_state().last_position > self.position:
            self.catch_up(blocking=blocking)

    def current(self) -> "Pending":
        """Bring the store up to the stream and say which entries it may not show as they are
        now: one statement (``_stream_check``) reads the stream's last position and the changes
        past the store's position, or not yet sequenced, in one snapshot. When the store is
        behind it catches up (reading pages) before answering; the changes read stay the ones
        past its old position, a superset of those past its new one (any change sequenced
        since was not sequenced when they were read), so the answer still describes the moment
        of the check."""
        position = self.position
        last, changed = _stream_check(position)
        return self._settled(position, last, changed)

    def check_with_event(self, position: int, event: tuple[str, list]) -> "Pending | None":
        """``current``'s check for an answer already built from the store at ``position`` as if
        nothing were pending (``Pending(position, {})``), sent with that answer's audit event
        (``event``: the ``INSERT`` and its parameters, ``audit_insert_sql``) in one statement,
        which writes the event only if the check proves the guess: the stream's last position
        is ``position`` and no change is pending. Then the store was current throughout (no
        change it could have applied existed), the answer describes the moment of the check,
        and None is returned. Otherwise nothing is written and ``current``'s ``Pending`` is
        returned (the store caught up if behind), for the caller to build its answer again and
        write its event alone. PostgreSQL only (``check_sends_event``)."""
        if _event_if_current(position, event):
            return None
        return self.current()

    def _settled(self, position: int, last: int, changed) -> "Pending":
        if last > position:
            self.catch_up()
        return Pending(position, changed)

    def apply(self, change: dict, *, video_frames: dict | None = None) -> None:
        """Apply one change of the stream; a vpdq change takes its frame list from
        ``video_frames`` (value -> canonical text, read beside the page) or the database."""
        signal = change["signal"]
        signal_type, value = signal["type"], signal["value"]
        self._rendered.get(signal_type, {}).pop(value, None)
        if signal_type == SignalType.VPDQ:
            if video_frames is None or value not in video_frames:
                video_frames = _video_frames([value])
            text = video_frames.get(value)
            frames = None if text is None else distinct_from_canonical(text)
            if change["op"] == "upsert":
                self.video.upsert(value, state=change["state"], frames=frames)
            else:
                self.video.remove(value, frames=frames)
            return
        if change["op"] == "upsert":
            if signal_type == "pdq":
                self.pdq.upsert(value, state=change["state"], quality=change.get("quality"))
            elif signal_type in self.exact:
                self.exact[signal_type].upsert(value, state=change["state"])
        elif signal_type == "pdq":
            self.pdq.remove(value)
        elif signal_type in self.exact:
            self.exact[signal_type].remove(value)

    # --- what members see of the matched entries ------------------------------------------------

    def rendered_entries(
        self,
        wanted: dict[str, list[str]],
        render: Callable[[list[tuple[str, str]]], dict[tuple[str, str], tuple]],
        pending: "Pending",
    ) -> dict[str, list[tuple | None]]:
        """The shared entries among ``wanted`` (signal type -> distinct values), as members see
        them now: signal type -> a list in the order of its values, holding the entry's rendering
        (what ``render`` returns: immutable, shared with the store) or None when it is not
        shared. Kept
        renderings serve the entries without a change ``pending`` (``current``); the rest are
        rendered by ``render`` (from the database) and kept for the next request. Looked up a
        list at a time (no Python step per value when all are kept)."""
        wanted = {t: values for t, values in wanted.items() if values}
        if not wanted:
            return {}
        changed = pending.changed
        if changed is None:  # far behind (or a backlog not sequenced): all from the database
            pairs = [(t, value) for t, values in wanted.items() for value in values]
            fresh = render(pairs)
            return {t: [fresh.get((t, v)) for v in values] for t, values in wanted.items()}
        out: dict[str, list[tuple | None]] = {}
        missing: list[tuple[str, str]] = []
        for signal_type, values in wanted.items():
            found = list(map(self._rendered.get(signal_type, {}).get, values))
            stale = changed.get(signal_type)
            if stale:
                found = [None if v in stale else e for v, e in zip(values, found, strict=True)]
            if found.count(None):
                missing.extend(
                    (signal_type, v) for v, e in zip(values, found, strict=True) if e is None
                )
            out[signal_type] = found
        if not missing:
            return out
        fresh = render(missing)
        for signal_type, values in wanted.items():
            found = out[signal_type]
            if found.count(None):
                out[signal_type] = [
                    fresh.get((signal_type, v)) if e is None else e
                    for v, e in zip(values, found, strict=True)
                ]
        self._keep(fresh, changed, pending.position)
        return out

    def rendered_spans(
        self,
        found: SortedResults,
        render: Callable[[list[tuple[str, str]]], dict[tuple[str, str], tuple]],
        pending: "Pending",
    ) -> tuple[KeptSpans, bool]:
        """``rendered_entries`` for the distinct rows of a pdq search (``found.rows``), in that
        order, as spans of bytes (``KeptSpans``: each row's rendering, its quality the span's
        number), and whether every row is shared (present). The kept renderings sit beside the
        index's rows (``PdqIndex.keep``): located by position, an array at a time, with no hex
        value made or looked up when all are kept and none is pending; the rest are rendered by
        ``render`` and kept beside their rows."""
        rows = found.rows
        spans = self.pdq.kept_spans(found.view, rows)
        changed = pending.changed
        if changed is None:  # far behind (or a backlog not sequenced): all from the database
            spans = replace(spans, present=np.zeros(len(rows), dtype=bool))
        stale = changed.get("pdq") if changed else None
        if stale:
            pending_rows = np.fromiter(
                (value in stale for value in found.values()), dtype=bool, count=len(rows)
            )
            spans = replace(spans, present=spans.present & ~pending_rows)
        missing = np.flatnonzero(~spans.present)
        if not len(missing):
            return spans, True
        values = found.values(missing)
        fresh = render([("pdq", value) for value in values])
        renderings = [fresh.get(("pdq", value)) for value in values]
        spans = spans.with_fresh(missing, renderings)
        if changed is not None and self._apply_lock.acquire(blocking=False):
            try:
                if self.position == pending.position:
                    keep = [
                        k
                        for k, (value, rendering) in enumerate(zip(values, renderings, strict=True))
                        if rendering is not None and value not in (stale or ())
                    ]
                    self._count_kept(len(keep))
                    self.pdq.keep(found.view, rows[missing[keep]], [renderings[k] for k in keep])
            finally:
                self._apply_lock.release()
        return spans, bool(spans.present.all())

    def _count_kept(self, count: int) -> None:
        """Count renderings about to be kept; past ``RENDERED_MAX`` forget every kept one first.
        Under ``_apply_lock``."""
        if self._rendered_count + count > RENDERED_MAX:
            self._rendered = {}
            self.pdq.forget_kept()
            self._rendered_count = 0
        self._rendered_count += count

    def _keep(self, fresh: dict[tuple[str, str], tuple], changed, position: int) -> None:
        """Keep these renderings, unless a change was applied since they were asked for (one of
        them may be older than it) or the store is applying one now (then it will have moved)."""
        if not self._apply_lock.acquire(blocking=False):
            return
        try:
            if self.position != position:
                return
            if self._rendered_count + len(fresh) > RENDERED_MAX:
                self._rendered = {}
                self.pdq.forget_kept()
                self._rendered_count = 0
            for (signal_type, value), entry in fresh.items():
                if value in changed.get(signal_type, ()):
                    continue  # changed past the position: rendered afresh until applied
                kept = self._rendered.setdefault(signal_type, {})
                if value not in kept:
                    self._rendered_count += 1
                kept[value] = entry
        finally:
            self._apply_lock.release()

    def start_following(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._follow, name="match-follower", daemon=True)
        self._thread.start()

    def stop_following(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _follow(self) -> None:
        interval = settings.MATCH_POLL_SECONDS
        while not self._stop.wait(interval):
            try:
                # Compares positions before it reads a page: most polls find nothing new.
                self.refresh(blocking=False)
            except Exception:  # a database hiccup must not end the follower
                logger.exception("match index follower: catch-up failed; retrying")
                connection.close()
        connection.close()  # this thread's own connection

    def status(self) -> StoreStatus:
        return StoreStatus(
            position=self.position,
            pdq=len(self.pdq),
            md5=len(self.exact["md5"]),
            sha256=len(self.exact["sha256"]),
            memory_bytes=self.pdq.memory_bytes(),
            vpdq=len(self.video),
            vpdq_frames=self.video.frame_count(),
            vpdq_memory_bytes=self.video.memory_bytes(),
        )


@dataclass(frozen=True)
class Pending:
    """What a store knew at a check (``MatchStore.current``): its ``position`` then, and the
    entries (signal type -> values) with a change it had not applied, or ``None`` when there
    were ``CHANGED_MAX`` or more (then nothing kept is used)."""

    position: int
    changed: dict[str, set[str]] | None


_STREAM_CHECK_SQL = """
SELECT NULL, NULL, last_position FROM {state} WHERE id = 1
UNION ALL
SELECT * FROM (
    SELECT e.signal_type, e.value, c.position
    FROM {change} c JOIN {entry} e ON e.id = c.entry_id
    WHERE c.position IS NULL
    ORDER BY c.id
    LIMIT %s
) unsequenced
UNION ALL
SELECT * FROM (
    SELECT e.signal_type, e.value, c.position
    FROM {change} c JOIN {entry} e ON e.id = c.entry_id
    WHERE c.position > %s
    ORDER BY c.position
    LIMIT %s
) ahead
"""


# An audit event's INSERT (``audit_insert_sql``: ``INSERT … SELECT <values>``), written only if
# the stream's last position is the store's (no state row: position 0) and no change row is
# pending: none unsequenced, none sequenced past that position. It answers the event's id, or
# no row. Each test reads at most one row of an index, in its order (the state row's key, the
# unsequenced rows' partial index, the positions' index), so that every plan of it, custom or
# generic, costs a few units whatever the statistics: no JIT, no parallel workers, no bitmap
# scan. So it runs without ``bounded_query``'s settings, prepared once per session
# (``SessionStatement``: planning it cost PostgreSQL more than running it). Not ``EXISTS``:
# without statistics PostgreSQL plans an ``EXISTS`` of the positions past the store's as a
# sequential scan of the change table, which finds nothing only once it has read all of it.
_EVENT_IF_CURRENT_SQL = """
{insert}
WHERE COALESCE((SELECT last_position FROM {state} WHERE id = 1), 0) = %s
AND (SELECT id FROM {change} WHERE position IS NULL ORDER BY id LIMIT 1) IS NULL
AND (SELECT position FROM {change} WHERE position > %s ORDER BY position LIMIT 1) IS NULL
RETURNING id
"""


def check_sends_event() -> bool:
    """Whether ``MatchStore.check_with_event`` can run here: PostgreSQL (the event's ``INSERT``
    casts its data to ``jsonb``, and is a prepared statement), the stream and the audit log in
    one database."""
    alias = router.db_for_read(EntryChange)
    return connections[alias].vendor == "postgresql" and router.db_for_write(AuditEvent) == alias


def _stream_check(position: int) -> tuple[int, dict[str, set[str]] | None]:
    """The stream's last position and the entries with a change the store has not applied (a
    change row not yet sequenced, or past ``position``; ``None`` past ``CHANGED_MAX``), in one
    statement, so one snapshot: the sequencer numbers rows and advances the last position in
    one transaction. Its three parts each read an index (the state row's key, the unsequenced
    rows' partial index, the positions' index in order with a limit, so that no plan scans the
    table even without statistics); usually only the first finds a row. It runs under
    ``bounded_query`` (one round trip with its plan settings): without statistics PostgreSQL
    otherwise planned the unsequenced part as a parallel sequential scan of the change table, or
    JIT-compiled the statement (``federation.db.plans``)."""
    sql = _STREAM_CHECK_SQL.format(
        state=SyncState._meta.db_table,
        change=EntryChange._meta.db_table,
        entry=Entry._meta.db_table,
    )
    alias = router.db_for_read(EntryChange)
    rows = bounded_query(
        sql, [CHANGED_MAX, position, CHANGED_MAX], using=alias, plain_index_scans=True
    )
    last = 0
    changed: dict[str, set[str]] = {}
    count = 0
    for signal_type, value, row_position in rows:
        if signal_type is None:
            last = row_position
            continue
        count += 1
        changed.setdefault(signal_type, set()).add(value)
    return last, (None if count >= CHANGED_MAX else changed)


def _event_if_current(position: int, event: tuple[str, list]) -> bool:
    """Write ``event`` (``audit_insert_sql``) if the store at ``position`` is current (the
    stream's last position is ``position`` and no change row is pending), in one statement;
    whether it was written."""
    insert, values = event
    if insert != AUDIT_INSERT_SQL:
        raise ValueError("the event is audit_insert_sql's")
    with connections[router.db_for_write(AuditEvent)].cursor() as cursor:
        _EVENT_IF_CURRENT.execute(cursor, [*values, position, position])
        return cursor.fetchone() is not None


_EVENT_IF_CURRENT = SessionStatement(
    "concordat_match_event",
    _EVENT_IF_CURRENT_SQL.format(
        insert=AUDIT_INSERT_SQL, state=SyncState._meta.db_table, change=EntryChange._meta.db_table
    ),
)


def _video_frames(values: list[str]) -> dict[str, str]:
    """The canonical frame lists of these vpdq values (whatever their entry's state: a removal
    needs the frames to find their rows)."""
    if not values:
        return {}
    return dict(
        VideoFrames.objects.filter(
            entry__signal_type=SignalType.VPDQ, entry__value__in=set(values)
        ).values_list("entry__value", "canonical")
    )


_store: MatchStore | None = None
_store_lock = threading.Lock()


def match_store() -> MatchStore:
    """This process's store, loaded on first use (and its follower started if configured)."""
    global _store
    store = _store
    if store is not None:
        return store
    with _store_lock:
        if _store is None:
            started = time.monotonic()
            store = MatchStore()
            store.load()
            logger.info(
                "match index loaded: %s in %.1f s", store.status(), time.monotonic() - started
            )
            if settings.MATCH_FOLLOW:
                store.start_following()
            _store = store
            _freeze_long_lived()
        return _store


_frozen = False


def _freeze_long_lived() -> None:
    """Once per process, after its first load: collect, then move every object the collector
    tracks (the modules, the framework, the store) to its permanent generation (``gc.freeze``),
    so that collections of the oldest generation no longer walk them. They are still freed by
    reference counting; only a cycle among them would never be collected, and a process that
    serves matches keeps them all to the end. Not per request: that would also freeze what a
    request leaves behind."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def loaded_match_store() -> MatchStore | None:
    """This process's store if it has loaded one, without loading it (the metrics read this)."""
    return _store


def reset_match_store() -> None:
    """Forget this process's store (tests; the next use loads it again)."""
    global _store
    with _store_lock:
        if _store is not None:
            _store.stop_following()
        _store = None
