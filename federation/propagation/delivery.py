"""Delivering the outbox to a peer: claim a round of rows, build and sign their batches, POST
them, apply the answers (docs/federation.md, "Sending").

One drain at a time per (peer, lane), under a PostgreSQL advisory lock held by the draining
connection (a killed worker's connection, and so its lock, goes with it). A lane is first in,
first out: it is drained oldest row first, and it waits while its oldest row is backing off or
in flight, so that an item never overtakes one it depends on (a retract its add, a dispute its
entry). Claiming marks the rows in flight with a lease (``claimed_until``) in a short
transaction (``select_for_update(skip_locked=True)``), and counts the attempt; the HTTP requests
run outside any transaction. A worker killed after claiming leaves the rows in flight until the
lease ends; they are then sent again, and the peer answers ``duplicate`` for what it already
has, so nothing is lost and nothing is applied twice.

A round is up to ``FEDERATION_DRAIN_PARALLEL`` batches sent at once (``partition``): the items
of one entry (its contributions and state changes) or of one key are all in one batch, in row
order, so batches that the peer applies in parallel, in whatever order, never reorder items
that depend on each other. Each batch is posted as soon as it is built, so the peer works on
one while the next is built, and each answer is applied as it comes. A drain of several
rounds (the drain task's) claims and builds the next round while one is out and posts it once
every answer of the one out is in (``_pipelined``): the peer is not left idle while this hub
claims and builds, and never holds two rounds of the lane at once. The rows claimed behind a
round stop at the first of an entry or key that round carries, and are put back unsent if a
row of the round out backs off, so the lane's order holds as with one round at a time.

The answer: ``accepted`` / ``duplicate`` → delivered (with the item's digest); ``rejected`` →
refused (the peer's code and message; not retried). No answer, an error status or a malformed
answer → every row of the batch backs off: ``base * 2 ** (attempts - 1)`` seconds, capped, times a
jitter drawn in [0.5, 1] for each row; after ``FEDERATION_MAX_ATTEMPTS`` attempts a row is a dead
letter (audited ``federation.dead_lettered``), which an admin can put back (``retry.outbox_retry``).
"""

import logging
import random
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from federation.db.locks import session_try_lock, session_unlock
from federation.enqueue import TaskName, nudge
from federation.gc_pause import cycle_collection_paused
from federation.hubkey import hub_private_key
from federation.monitoring.counters import push_failed_counted
from federation.propagation.batching import (
    CLAIMED_COLUMNS,
    ClaimedRow,
    partition,
    row_group,
    within_body_budget,
)
from federation.propagation.items import ItemsBuilder
from federation.propagation.models import OutboxItem, PeerLink, Receipt
from federation.propagation.posting import DeliveryFailed, batch_outcome, said_roots, takes_roots
from federation.propagation.round_sql import claim_round, delivered_round
from federation.propagation.wire import batch_canonical, batch_document, sign_canonical
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_inserted, audit_record
from members.actors import Actor
from members.models import Peer

logger = logging.getLogger(__name__)

SENDER = Actor.system("outbox")
# pg_advisory_lock(int4, int4): this namespace, then peer id * 2 + lane.
_LOCK_NAMESPACE = 0x0FED5E
_ERROR_LENGTH = 500


@dataclass
class DrainResult:
    batches: int = 0
    delivered: int = 0
    refused: int = 0
    failed: int = 0
    dead: int = 0
    more: bool = False  # stopped with due rows left (the task hands over to a fresh one)


def _write_rows(rows: list[ClaimedRow], fields: list[str]) -> None:
    """``fields`` of claimed rows written back, one ``bulk_update`` (rows refused or backing off:
    a few, now and then; the delivered go through ``_mark_delivered``)."""
    if rows:
        OutboxItem.objects.bulk_update(
            [OutboxItem(pk=r.id, **{name: getattr(r, name) for name in fields}) for r in rows],
            fields,
        )


def backoff_seconds(attempts: int, *, rng: random.Random | None = None) -> float:
    """How long a row waits after its ``attempts``-th failed attempt."""
    base = settings.FEDERATION_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    delay = min(settings.FEDERATION_BACKOFF_MAX_SECONDS, base)
    return delay * (rng or random).uniform(0.5, 1.0)


def _lock_key(peer_id: int, lane: str) -> tuple[int, int]:
    return _LOCK_NAMESPACE, (peer_id * 2 + (1 if lane == OutboxItem.Lane.INCIDENT else 0)) % (2**31)


def outbox_drain(
    *, peer_id: int, lane: str, max_rounds: int | None = None, seconds: float | None = None
) -> DrainResult:
    """Send what is due to the peer in ``lane``, a round of batches at a time, until nothing is
    due, ``max_rounds`` rounds were sent (``FEDERATION_DRAIN_ROUNDS`` if neither is given) or,
    with ``seconds``, no new round is claimed after that long. Returns at once when another
    drain holds the lane. With more than one round, the next round is claimed and built while
    one is out (``_pipelined``)."""
    result = DrainResult()
    peer = Peer.objects.filter(pk=peer_id).select_related("link").first()
    if peer is None or not (peer.is_active and peer.is_link and peer.outbound_token):
        return result
    if max_rounds is None:
        max_rounds = 1_000_000 if seconds is not None else settings.FEDERATION_DRAIN_ROUNDS
    # The embedded demo (SQLite) takes no lock: one solo worker per hub drains one lane at a time.
    if not session_try_lock(_lock_key(peer_id, lane)):
        return result
    try:
        if max_rounds == 1:
            with cycle_collection_paused():
                rows = _claim(peer, lane)
                if rows is not None:
                    _send(peer, rows, result)
        else:
            deadline = None if seconds is None else time.monotonic() + seconds
            _pipelined(peer, lane, result, rounds=max_rounds, deadline=deadline)
    finally:
        session_unlock(_lock_key(peer_id, lane))
    # Rows left (a limit reached, or rows committed while this drain was finishing, whose nudge
    # found the lane locked): the caller goes on, or hands the lane to a fresh task.
    result.more = _due(peer_id, lane)
    if result.delivered and not result.more:
        # The batches' federation.sent events are sequenced once the lane has nothing left due;
        # while a backlog drains, by the sequencer's periodic run, not by a run (and a checkpoint)
        # for each batch's one event.
        audit_inserted()
    return result


def request_drain(*, peer_id: int, lane: str) -> None:
    """A best-effort nudge (after a commit); the periodic sweep is the guarantee. The incident
    lane's task has its own queue (``federation.enqueue``)."""
    incident = lane == OutboxItem.Lane.INCIDENT
    nudge(TaskName.DRAIN_OUTBOX_INCIDENT if incident else TaskName.DRAIN_OUTBOX, peer_id)


def request_drain_all(*, peer_ids: Iterable[int]) -> None:
    for peer_id in peer_ids:
        for lane in (OutboxItem.Lane.NORMAL, OutboxItem.Lane.INCIDENT):
            request_drain(peer_id=peer_id, lane=lane)


def _due(peer_id: int, lane: str, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    head = (
        OutboxItem.objects.filter(peer_id=peer_id, lane=lane, state=OutboxItem.State.PENDING)
        .order_by("id")
        .values_list("next_attempt_at", "claimed_until")
        .first()
    )
    return head is not None and head[0] <= now and (head[1] is None or head[1] <= now)


def _round_size() -> int:
    return settings.FEDERATION_BATCH_SIZE * settings.FEDERATION_DRAIN_PARALLEL


def _claim(
    peer: Peer, lane: str, skip: list[int] | tuple[int, ...] = ()
) -> list[ClaimedRow] | None:
    """The lane's oldest rows for one round (``FEDERATION_DRAIN_PARALLEL`` batches), in flight;
    ``skip``: the rows of the round this drain has out, passed over."""
    now = timezone.now()
    limit = _round_size()
    lease = now + timedelta(seconds=settings.FEDERATION_LEASE_SECONDS)
    if connection.vendor == "postgresql":
        with transaction.atomic():
            claimed = [
                ClaimedRow(*values, None, lease)
                for values in claim_round(
                    peer_id=peer.pk, lane=lane, limit=limit, now=now, lease=lease, skip=skip
                )
            ]
        for row in claimed:  # jsonb comes as its text (Django's loader); mostly an empty path
            row.path = [] if row.path == "[]" else orjson.loads(row.path)
        return claimed or None
    with transaction.atomic():
        rows = [
            ClaimedRow(*values)
            for values in OutboxItem.objects.select_for_update(skip_locked=True)
            .filter(peer=peer, lane=lane, state=OutboxItem.State.PENDING)
            .exclude(pk__in=list(skip))
            .order_by("id")
            .values_list(*CLAIMED_COLUMNS)[:limit]
        ]
        if not rows or rows[0].next_attempt_at > now:
            return None
        claimed = []
        for row in rows:
            if row.claimed_until is not None and row.claimed_until > now:
                break  # in flight (a worker that died holding it): wait for its lease
            claimed.append(row)
        if not claimed:
            return None
        OutboxItem.objects.filter(pk__in=[r.pk for r in claimed]).update(
            claimed_until=lease, attempts=F("attempts") + 1
        )
        for row in claimed:
            row.claimed_until, row.attempts = lease, row.attempts + 1
    return claimed


def _release(rows: list[ClaimedRow]) -> None:
    """Claimed rows left for the next round: no longer in flight, the attempt not counted."""
    OutboxItem.objects.filter(pk__in=[r.pk for r in rows]).update(
        claimed_until=None, attempts=F("attempts") - 1
    )


@dataclass
class _SignedBatch:
    """One outgoing batch, built and signed, with the outbox rows it carries."""

    batch_id: uuid.UUID
    body: bytes
    sent: list[tuple[ClaimedRow, str]]  # (row, item digest), in batch order
    rooted: bool = False  # this hub's attestations went under roots


class _Round:
    """A round's batches: built and signed (``build``), POSTed on the drain's threads, one thread
    each (``post``: the peer applies them in parallel), and their answers applied as they come
    (``finish``)."""

    def __init__(self, peer: Peer, rows: list[ClaimedRow], pool: ThreadPoolExecutor) -> None:
        self.peer, self.rows, self.pool = peer, rows, pool
        self.batches: list[_SignedBatch] = []
        self.sending: dict = {}
        self.posted = False

    def build(self, result: DrainResult, *, post: bool) -> None:
        """Split the claimed rows into independent batches, build and sign each (``post``: and
        POST it at once, so that the peer works on it while the next is built)."""
        now = timezone.now()
        groups, left_over = partition(
            [(row.pk, row_group(row)) for row in self.rows],
            parts=settings.FEDERATION_DRAIN_PARALLEL,
            size=settings.FEDERATION_BATCH_SIZE,
        )
        by_id = {row.pk: row for row in self.rows}
        if left_over:
            _release([by_id[pk] for pk in left_over])
        # The claimed rows are the builder's refs as they are (a ``ClaimedRow`` has a
        # ``RowRef``'s fields); a push sends the items' bytes, so their dicts are not built.
        builder = ItemsBuilder(
            [by_id[pk] for pks in groups for pk in pks],
            peer_hub=self.peer.hub_id,
            now=now,
            documents=False,
            roots=takes_roots(self.peer),
        )
        for pks in groups:
            batch = _prepare(self.peer, builder, [by_id[pk] for pk in pks], now, result)
            if batch is not None:
                self.batches.append(batch)
                if post:
                    self._post(batch)
        self.posted = post

    def _post(self, batch: _SignedBatch) -> None:
        self.sending[self.pool.submit(batch_outcome, self.peer, batch.body)] = batch

    def post(self) -> None:
        """POST the batches, if ``build`` did not."""
        if not self.posted:
            self.posted = True
            for batch in self.batches:
                self._post(batch)

    @property
    def sent_rows(self) -> list[ClaimedRow]:
        return [row for batch in self.batches for row, _digest in batch.sent]

    def finish(self, result: DrainResult) -> bool:
        """Wait for every answer and apply each as it comes; False if a row of the round backs
        off or is a dead letter (no answer for it)."""
        failed_before = result.failed + result.dead
        result.batches += len(self.sending)
        for future in as_completed(self.sending):
            batch, outcome = self.sending[future], future.result()
            if isinstance(outcome, DeliveryFailed):
                _failed(self.peer, [row for row, _digest in batch.sent], str(outcome), result)
            else:
                # A peer that no longer says it takes roots (moved back to an earlier version)
                # refuses the rooted pairs as ``invalid``: those rows are built again, signed alone.
                rebuild = batch.rooted and not outcome.takes_roots
                _apply(self.peer, batch, outcome.results, result, rebuild=rebuild)
                if outcome.takes_roots != said_roots(self.peer):
                    _remember_roots(self.peer, outcome.takes_roots)
        return result.failed + result.dead == failed_before


def _send(peer: Peer, rows: list[ClaimedRow], result: DrainResult) -> None:
    """One round, nothing else in flight, every answer applied before it returns."""
    with ThreadPoolExecutor(max_workers=settings.FEDERATION_DRAIN_PARALLEL) as pool:
        sending = _Round(peer, rows, pool)
        sending.build(result, post=True)
        sending.finish(result)


def _pipelined(
    peer: Peer, lane: str, result: DrainResult, *, rounds: int, deadline: float | None
) -> None:
    """Rounds one after another, each claimed and built while the one before (if it was full)
    is out and posted once it is answered (the module's docstring says how the lane's order
    holds). No round is claimed after ``deadline``, but a first one is."""
    with ThreadPoolExecutor(max_workers=settings.FEDERATION_DRAIN_PARALLEL) as pool:
        out: _Round | None = None
        claimed = 0
        while True:
            with cycle_collection_paused():
                following = None
                # Behind a round only when it was full (a backlog): rows that trickle in wait for
                # the round out and then go at once, not for a round claimed as it left.
                if (
                    rounds > claimed
                    and (not claimed or deadline is None or time.monotonic() < deadline)
                    and (out is None or len(out.rows) >= _round_size())
                ):
                    rows = _claim(peer, lane, skip=[r.pk for r in out.sent_rows] if out else ())
                    if rows and out is not None:
                        rows = _behind(rows, out.sent_rows)
                    if rows:
                        claimed += 1
                        following = _Round(peer, rows, pool)
                        following.build(result, post=out is None)
                if out is not None:
                    if not out.finish(result):
                        if following is not None:
                            _release(following.sent_rows)
                        return
                    if following is None:
                        # Nothing claimed behind it (nothing was due, or the next row waits for
                        # the round): claim again with nothing in flight.
                        out = None
                        continue
                elif following is None:
                    return
                if not following.posted:
                    _incidents_first(peer, lane)
                following.post()
                out = following if following.batches else None


_INCIDENT_YIELD_SECONDS = 1.0


def _incidents_first(peer: Peer, lane: str) -> None:
    """An ordinary round built behind another waits to be posted while the peer's incident
    lane has rows due or in flight, up to ``_INCIDENT_YIELD_SECONDS``: the peer then stores the
    incident batch beside none of this hub's ordinary ones ("Measured", round 5)."""
    if lane != OutboxItem.Lane.NORMAL:
        return
    deadline = time.monotonic() + _INCIDENT_YIELD_SECONDS
    while time.monotonic() < deadline and (
        OutboxItem.objects.filter(
            peer_id=peer.pk,
            lane=OutboxItem.Lane.INCIDENT,
            state=OutboxItem.State.PENDING,
            next_attempt_at__lte=timezone.now(),
        ).exists()
    ):
        time.sleep(0.02)


def _behind(rows: list[ClaimedRow], in_flight: list[ClaimedRow]) -> list[ClaimedRow]:
    """The claimed rows up to the first whose entry or key has a row in flight; that one and
    the rows after it are released, to be claimed once the round in flight is answered."""
    busy = {row_group(row) for row in in_flight}
    for position, row in enumerate(rows):
        if row_group(row) in busy:
            _release(rows[position:])
            return rows[:position]
    return rows


def _prepare(
    peer: Peer, builder: ItemsBuilder, rows: list[ClaimedRow], now: datetime, result: DrainResult
) -> _SignedBatch | None:
    """The signed batch of ``rows`` (those still owed and buildable), or None if none is."""
    built = builder.build(rows)
    by_id = {row.pk: row for row in rows}
    if built.dropped:
        # No longer owed (the peer is on the item's path, or the entry went back to review).
        OutboxItem.objects.filter(pk__in=built.dropped).delete()
    if built.failed:
        _dead_letter(
            peer, [by_id[pk] for pk in built.failed], "; ".join(set(built.failed.values()))
        )
        result.dead += len(built.failed)
    if not built.items:
        return None
    items = within_body_budget(built.items, built.canonical)
    if len(items) < len(built.items):
        _release([by_id[pk] for pk, _item, _digest in built.items[len(items) :]])
    batch_id = uuid.uuid4()
    document = batch_document(
        sender=settings.HUB_ID,
        receiver=peer.hub_id,
        batch_id=batch_id,
        sent_at=now,
        items=[],  # the items' bytes are spliced in (``batch_canonical``)
    )
    canonical = batch_canonical(document, [built.canonical[pk] for pk, _item, _digest in items])
    signature = sign_canonical(hub_private_key(), document, canonical).as_wire()[1]
    # The body is the envelope's canonical bytes as they are (any JSON will do; these are written).
    body = b'{"batch":' + canonical + b',"signature":"' + signature.encode() + b'"}'
    return _SignedBatch(
        batch_id,
        body,
        [(by_id[pk], digest) for pk, _item, digest in items],
        rooted=builder.roots,
    )


def _apply(peer, batch: _SignedBatch, answers, result: DrainResult, *, rebuild: bool) -> None:
    """The peer's answers applied to the batch's rows. ``rebuild``: a row refused as ``invalid``
    goes back in its queue, due now, for the next round to build again (its attempt counted;
    after the last attempt it stays refused)."""
    now = timezone.now()
    delivered, refused, rebuilt, unanswered = [], [], [], []
    for index, (row, digest) in enumerate(batch.sent):
        answer = answers.get(index)
        status = answer.get("status") if answer else None
        if status in ("accepted", "duplicate"):
            row.state, row.digest, row.delivered_at = OutboxItem.State.DELIVERED, digest, now
            row.claimed_until, row.last_error = None, ""
            delivered.append(row)
        elif status == "rejected":
            row.claimed_until = None
            row.last_error = f"{answer.get('code')}: {answer.get('message')}"[:_ERROR_LENGTH]
            if (
                rebuild
                and answer.get("code") == "invalid"
                and row.attempts < settings.FEDERATION_MAX_ATTEMPTS
            ):
                row.next_attempt_at = now
                rebuilt.append(row)
            else:
                row.state, row.digest = OutboxItem.State.REFUSED, digest
                refused.append(row)
        else:
            unanswered.append(row)
    with transaction.atomic():
        _write_rows(refused, ["state", "digest", "delivered_at", "claimed_until", "last_error"])
        _write_rows(rebuilt, ["next_attempt_at", "claimed_until", "last_error"])
        _mark_delivered(peer, batch.batch_id, delivered, now)
    result.delivered += len(delivered)
    result.refused += len(refused)
    result.failed += len(rebuilt)
    if rebuilt:
        logger.warning(
            "%s refused %d items of batch %s sent under attestation roots, and no longer says "
            "it takes them: built again with attestations signed alone: %s",
            peer.hub_id,
            len(rebuilt),
            batch.batch_id,
            rebuilt[0].last_error,
        )
    if refused:
        logger.warning(
            "%s refused %d items of batch %s (not retried): %s",
            peer.hub_id,
            len(refused),
            batch.batch_id,
            refused[0].last_error,
        )
    if unanswered:
        _failed(peer, unanswered, "the peer's answer did not name this item", result)


def _mark_delivered(peer: Peer, batch_id, rows: list[ClaimedRow], now: datetime) -> None:
    """Rows delivered, each with its item's digest, the batch's ``federation.sent`` event naming
    them, and the link's ``last_push_at``: one statement on PostgreSQL (``round_sql``; Django's
    ``bulk_update`` builds a CASE per column and row, most of a round's own time at 500 rows)."""
    event = AuditRecord(
        action=Action.FEDERATION_SENT,
        actor=SENDER,
        object_type=ObjectType.PEER,
        object_id=peer.hub_id,
        data={
            Key.PEER: peer.hub_id,
            Key.BATCH: str(batch_id),
            Key.VIA: Receipt.Via.PUSH.value,
            Key.ITEMS: [row.digest for row in rows],
        },
    )
    if rows and connection.vendor == "postgresql":
        if delivered_round(
            peer_id=peer.pk,
            ids=[r.pk for r in rows],
            digests=[r.digest for r in rows],
            now=now,
            event=event,
        ):
            return
    elif rows:
        _write_rows(rows, ["state", "digest", "delivered_at", "claimed_until", "last_error"])
        audit_record(event)
    PeerLink.objects.update_or_create(peer=peer, defaults={"last_push_at": now})


def _remember_roots(peer: Peer, takes: bool) -> None:
    """What the peer's answer said of attestation roots, kept on its link for every worker's
    next round (``posting.said_roots``)."""
    if PeerLink.objects.filter(peer=peer).update(takes_attestation_roots=takes):
        peer.link = PeerLink.objects.get(peer=peer)


def _failed(peer: Peer, rows: list[ClaimedRow], message: str, result: DrainResult) -> None:
    """Back off each row (its own jittered delay), or make it a dead letter."""
    now = timezone.now()
    message = message[:_ERROR_LENGTH]
    dead = [row for row in rows if row.attempts >= settings.FEDERATION_MAX_ATTEMPTS]
    waiting = [row for row in rows if row.attempts < settings.FEDERATION_MAX_ATTEMPTS]
    for row in waiting:
        row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts))
        row.claimed_until, row.last_error = None, message
    with transaction.atomic():
        _write_rows(waiting, ["next_attempt_at", "claimed_until", "last_error"])
        if dead:
            _dead_letter(peer, dead, message)
        PeerLink.objects.update_or_create(
            peer=peer, defaults={"last_push_error": message, "last_push_error_at": now}
        )
    result.failed += len(waiting)
    result.dead += len(dead)
    push_failed_counted(peer=peer.hub_id)
    # WARNING: operators alert on these lines (docs/operations.md, "Logs").
    logger.warning(
        "push to %s failed: %d items (%d to retry, %d dead-lettered): %s",
        peer.hub_id,
        len(rows),
        len(waiting),
        len(dead),
        message,
    )


def _dead_letter(peer: Peer, rows: list[ClaimedRow], message: str) -> None:
    message = message[:_ERROR_LENGTH]
    with transaction.atomic():
        OutboxItem.objects.filter(pk__in=[r.pk for r in rows]).update(
            state=OutboxItem.State.DEAD, claimed_until=None, last_error=message
        )
        audit_record(
            AuditRecord(
                action=Action.FEDERATION_DEAD_LETTERED,
                actor=SENDER,
                object_type=ObjectType.PEER,
                object_id=peer.hub_id,
                data={
                    Key.ITEMS: sorted(r.pk for r in rows),
                    Key.ATTEMPTS: max(r.attempts for r in rows),
                    Key.MESSAGE: message,
                },
            )
        )
    logger.warning(
        "dead-lettered %d items for %s after %d attempts: %s",
        len(rows),
        peer.hub_id,
        max(r.attempts for r in rows),
        message,
    )
