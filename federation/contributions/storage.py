"""Storing checked contributions for the submitting organisation (a member here, or a foreign
member's mirror when federation relays them): ``contributions_store``, one transaction per
request, written chunk by chunk as the chunks are verified, with a fixed number of statements per
chunk whatever its size (and a few more per request).

It owns idempotency (a stored UUID with the same bytes is a duplicate, with other bytes a
conflict), the entries, the contributions and their labels, their ``contribution.accepted``
events, and the order within a request: adds before retracts (docs/api.md), so a request that
adds a signal and retracts it leaves the entry retracted. The policy decides the entries' moves
(``federation.vetting.policy``); what follows the stored contributions is
``federation.downstream``'s; rejection events are built by ``federation.contributions.rejections``.
A request that loses a race to a concurrent one runs its write step again (``federation.db.retry``),
from the chunks already verified, alone among ingests (``INGEST_LOCK_KEY``).
"""

import binascii
import uuid as uuid_module
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Case, Value, When

from federation import downstream
from federation.contributions.checks import CheckOutcome, Rejection, Verified
from federation.contributions.entry_rows import NEW_ENTRY_ROUND, entries_upsert
from federation.contributions.models import Contribution, Entry, EntryLabel
from federation.contributions.rejections import malformed_items_record, rejection_record
from federation.db.bulk_insert import (
    copy_rows,
    copy_stream,
    packed_uuids,
    upsert_rows,
    uuid_array_sql,
)
from federation.db.locks import xact_lock, xact_lock_shared
from federation.db.retry import Replayable, atomic_retrying_lost_races
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import (
    AuditRecord,
    audit_record,
    audit_record_alike,
    audit_record_many,
)
from federation.vetting.policy import apply_policy_to_entries, vetting_every_add
from federation.video.services import video_frames_record
from members.actors import Actor
from members.models import Organisation

# pg_advisory_xact_lock key of the ingest's writes ("INGE" in ASCII): every write takes it
# shared; one run again after a lost race takes it alone.
INGEST_LOCK_KEY = 0x494E4745

# Statuses of one item's result.
CREATED = "created"
DUPLICATE = "duplicate"
REJECTED = "rejected"

RETRACT = Contribution.Action.RETRACT


@dataclass(slots=True)
class ContributionResult:
    """What became of one submitted item (the API's per-item result)."""

    index: int
    status: str
    uuid: str | None = None
    entry_id: int | None = None
    error: dict[str, Any] | None = None
    # Asked for by ``vetted_on_arrival``: the entry inserted vetted (its move the caller's), the id.
    entry_inserted_vetted: bool = False
    contribution_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"index": self.index, "status": self.status, "uuid": self.uuid}
        if self.entry_id is not None:
            result["entry_id"] = self.entry_id
        if self.error is not None:
            result["error"] = self.error
        return result


class _Stored(NamedTuple):
    verified: Verified
    pk: int | None  # known for retracts only (adds need none, and drawing ids costs)
    entry_id: int


@dataclass
class _StoreBatch:
    """What one request is doing, shared by the steps below."""

    actor: Actor  # a member user: its organisation is the one submitting
    organisation: Organisation
    now: datetime
    results: list[ContributionResult | None]
    label_ids: Mapping[str, int]
    request_evidence: Callable[[], Mapping[str, Any]] | None = None
    vetted_on_arrival: Collection[int] = ()
    # Whether every chunk looks its UUIDs up before writing them (``_store_chunk``): on SQLite,
    # whose unique violations are no lost race to run again from, and in a write run again.
    look_up_every_chunk: bool = False
    rejections: list[AuditRecord] = field(default_factory=list)  # by storage
    check_rejections: list[AuditRecord] = field(default_factory=list)  # by the checks
    malformed: list[Rejection] = field(default_factory=list)

    def reject(
        self,
        index: int,
        code: str,
        message: str,
        *,
        evidence: dict[str, Any],
        field=None,
        by_checks: bool = False,
    ) -> None:
        """Refuse an item that carried a claim: its own audit event, with the evidence."""
        self._result(index, code, message, evidence, field)
        (self.check_rejections if by_checks else self.rejections).append(
            rejection_record(
                actor=self.actor,
                organisation=self.organisation.slug,
                index=index,
                code=code,
                message=message,
                field=field,
                evidence=evidence,
            )
        )

    def refuse(self, rejection: Rejection) -> None:
        if rejection.claim:
            self.reject(
                rejection.index,
                rejection.code,
                rejection.message,
                evidence=rejection.evidence,
                field=rejection.field,
                by_checks=True,
            )
        else:
            # Too malformed to claim anything: summarised with the others of this request in
            # one event (malformed_items_record), so junk items cannot each cost a permanent entry.
            self._result(
                rejection.index,
                rejection.code,
                rejection.message,
                rejection.evidence,
                rejection.field,
            )
            self.malformed.append(rejection)

    def _result(self, index, code, message, evidence, field) -> None:
        error = {"code": code, "message": message, "details": {"field": field} if field else None}
        self.results[index] = ContributionResult(
            index=index, status=REJECTED, uuid=evidence.get("uuid"), error=error
        )

    def set(self, v: Verified, status: str, entry_id: int | None, vetted=False, pk=None) -> None:
        self.results[v.index] = ContributionResult(
            # The UUID's text as signed (its canonical form; ``str()`` of it would cost 1.5 µs).
            index=v.index,
            status=status,
            uuid=v.parsed.document["uuid"],
            entry_id=entry_id,
            entry_inserted_vetted=vetted,
            contribution_id=pk,
        )


def submitting_organisation(actor: Actor) -> Organisation:
    if actor.organisation is None:
        raise ValueError("only a member's user submits contributions")
    return actor.organisation


def contributions_store(
    *,
    actor: Actor,
    outcome: CheckOutcome | Iterable[CheckOutcome],
    item_count: int,
    label_ids: Mapping[str, int],
    now: datetime,
    request_evidence: Callable[[], Mapping[str, Any]] | None = None,
    vetted_on_arrival: Collection[int] = (),
) -> list[ContributionResult]:
    """Store what ``check_contributions`` verified for the organisation of ``actor``, and audit
    what it rejected, in one transaction. Each contribution's origin hub is its signed ``hub``
    field.

    ``outcome`` is one ``CheckOutcome`` or consecutive chunks of one request
    (``check_contributions_in_chunks``): each chunk's adds are written as it arrives, while the
    pool verifies the next; the retracts, the outbox rows of the adds and the rejection events
    follow the last chunk, so the request reads as if it were written whole.

    ``vetted_on_arrival`` (federation receiving, a trusted peer's vetted adds): the indexes of
    adds each alone in the request with its signal, that the caller moves to vetted in this
    transaction. Those carrying no incident, of a member the policy does not vet itself, have
    a new entry inserted vetted (their results say ``entry_inserted_vetted``, and every stored
    add's its ``contribution_id``): the caller's move records it from pending, no UPDATE."""
    batch = _StoreBatch(
        actor=actor,
        organisation=submitting_organisation(actor),
        now=now,
        results=[None] * item_count,
        label_ids=label_ids,
        request_evidence=request_evidence,
        vetted_on_arrival=vetted_on_arrival,
        look_up_every_chunk=connection.vendor != "postgresql",
    )
    chunks = Replayable([outcome] if isinstance(outcome, CheckOutcome) else outcome)
    alone = False
    # Within a caller's transaction (federation's receiving) a rerun does not wait for the other
    # ingests: that transaction may hold rows they wait for.
    may_wait_alone = not connection.in_atomic_block

    def write() -> None:
        # Chunks are written in UUID order each, not the whole request, so two requests sharing
        # items can deadlock or collide more than once: a write run again after a lost race
        # waits for the other ingests under way to end, and runs alone (``INGEST_LOCK_KEY``).
        (xact_lock if alone else xact_lock_shared)(INGEST_LOCK_KEY)
        request = _StoreRequest()
        with downstream.request_writes():
            for chunk in chunks:
                for rejection in chunk.rejections:
                    batch.refuse(rejection)
                _store_chunk(batch, request, chunk.verified)
            _store_finish(batch, request)
        audit_record_many([*batch.check_rejections, *batch.rejections])
        if batch.malformed:
            audit_record(
                malformed_items_record(
                    actor=batch.actor,
                    organisation=batch.organisation.slug,
                    malformed=batch.malformed,
                    item_count=len(batch.results),
                    request_evidence=batch.request_evidence() if batch.request_evidence else None,
                )
            )

    def forget() -> None:
        # The transaction rolled back, so nothing of ours was kept: forget what the write step
        # decided; run again over the chunks already verified (then the rest), alone, it sees
        # the other request's rows as duplicates or conflicts.
        nonlocal alone
        alone = may_wait_alone
        batch.look_up_every_chunk = True
        batch.check_rejections.clear()
        batch.rejections.clear()
        batch.malformed.clear()
        batch.results[:] = [None] * item_count

    atomic_retrying_lost_races(write, reset=forget, what="contribution batch")
    assert all(result is not None for result in batch.results)
    return batch.results  # type: ignore[return-value]


@dataclass
class _StoreRequest:
    """What one attempt at writing a request carries from chunk to chunk."""

    # By the UUID's integer (hashed in C; a UUID's own hash is a Python call, 65 ns an item).
    first_seen: dict[int, Verified] = field(default_factory=dict)
    twins: list[tuple[Verified, Verified]] = field(default_factory=list)  # (repeat, first)
    retracts: list[Verified] = field(default_factory=list)
    added: list[uuid_module.UUID] = field(default_factory=list)
    # Whether every entry the request's chunks wrote so far was new: the next chunk's are then
    # inserted as new (``copy_new_rows``); once one existed, the rest are upserted.
    entries_new: bool = True
    # Whether the next chunk looks up which of its UUIDs are stored: the first does; once one
    # found none, the rest of the request is taken to be new too (``_store_chunk``).
    look_up: bool = True


def _store_chunk(batch: _StoreBatch, request: _StoreRequest, verified: list[Verified]) -> None:
    """Write one chunk's verified adds: a fixed number of bulk statements whatever their number.
    Its retracts wait for the request's last chunk (adds before retracts, docs/api.md)."""
    organisation = batch.organisation
    now = batch.now
    first_seen = request.first_seen
    # A UUID this request already carried is judged against that item (stored by an earlier
    # chunk, or a retract still waiting), not looked up. Nor is an add's once a chunk's lookup
    # found none (a request of new items, as nearly all are; 2.6 µs an item): a stored one then
    # fails its insert on the unique index, a lost race, and the write runs again looking every
    # chunk up. A retract always is: a stored one repeated would be refused, not inserted.
    look_up = request.look_up or batch.look_up_every_chunk
    unseen = [
        v.parsed.uuid
        for v in verified
        if v.parsed.uuid.int not in first_seen and (look_up or v.parsed.action == RETRACT)
    ]
    existing = {row[0].int: row[1:] for row in _stored_contributions(unseen)} if unseen else {}
    if look_up:
        request.look_up = bool(existing)
    # Same UUID twice: identical bytes are one contribution; different bytes are a conflict.
    fresh: list[Verified] = []
    for v in verified:
        key = v.parsed.uuid.int
        first = first_seen.get(key)
        if first is not None:
            if first.parsed.content_hash == v.parsed.content_hash:
                request.twins.append((v, first))
            else:
                _reject_conflict(batch, v, first.parsed.content_hash)
            continue
        stored = existing.get(key)
        if stored is not None:
            content_hash, entry_id, organisation_id = stored
            if content_hash == v.parsed.content_hash and organisation_id == organisation.pk:
                batch.set(v, DUPLICATE, entry_id)
            else:
                _reject_conflict(batch, v, content_hash)
            continue
        first_seen[key] = v
        fresh.append(v)

    adds = [v for v in fresh if v.parsed.action == Contribution.Action.ADD]
    request.retracts.extend(v for v in fresh if v.parsed.action == Contribution.Action.RETRACT)
    if not adds:
        return
    # A member whose every add the policy vets (trusted) has its new entries inserted vetted:
    # the policy then records their move from pending (events, decisions, downstream) without
    # updating each row again. Only where the upsert says which rows it inserted.
    vetting = vetting_every_add(organisation) if connection.vendor == "postgresql" else None
    arriving: set[tuple[str, str]] = set()
    if batch.vetted_on_arrival and connection.vendor == "postgresql" and not organisation.trusted:
        marked = {
            v.index for v in adds if v.index in batch.vetted_on_arrival and not v.parsed.incident
        }
        arriving = {(v.parsed.signal_type, v.parsed.value) for v in adds if v.index in marked}
        arriving -= {(v.parsed.signal_type, v.parsed.value) for v in adds if v.index not in marked}
    state = Entry.State.PENDING if vetting is None else Entry.State.VETTED
    written = entries_upsert(
        signals={
            (signal := (v.parsed.signal_type, v.parsed.value)): (
                Entry.State.VETTED if signal in arriving else state
            )
            for v in adds
        },
        now=now,
        as_new=request.entries_new,
    )
    request.entries_new = written.as_new
    entries, states, created = written.ids, written.states, written.created
    # Pending to the policy, which leaves them alone (no incident, no trusted member).
    arrived = {pk for signal, pk in entries.items() if signal in arriving and pk in created}
    states = {**states, **dict.fromkeys(arrived, Entry.State.PENDING)}
    inserted = None
    if vetting is not None and created:
        inserted = dict.fromkeys(created, NEW_ENTRY_ROUND)
        states = {**states, **dict.fromkeys(created, Entry.State.PENDING)}
    video_frames_record(
        frame_lists=[
            (entries[(v.parsed.signal_type, v.parsed.value)], v.parsed.frames)
            for v in adds
            if v.parsed.frames is not None
        ]
    )
    stored_adds = _insert_contributions(
        adds, entries, organisation, now, with_pks=bool(batch.vetted_on_arrival)
    )
    _link_labels(batch, adds, entries, created)
    # Each acceptance is logged before the state changes it causes (reopened, auto-vetted,
    # retracted), so the log reads in causal order.
    _audit_accepted(batch, stored_adds)
    # Only the entries that existed before: one this chunk inserted has no change row yet, and
    # is pending (members do not see it, so it gets none) or inserted vetted (it gets its row
    # from its move).
    changed = [pk for pk in entries.values() if pk not in created] if created else entries.values()
    downstream.adds_stored(entry_ids=changed, now=now)
    # The policy (reopen, auto-vet) sees the adds before this request's retracts are applied, so
    # that "adds before retracts" holds for the entry's state too.
    entry_incidents: dict[int, uuid_module.UUID | None] = {}
    for stored in stored_adds:
        if entry_incidents.get(stored.entry_id) is None:
            entry_incidents[stored.entry_id] = stored.verified.parsed.incident
    apply_policy_to_entries(
        entry_incidents=entry_incidents,
        actor=batch.actor,
        now=now,
        states=states,
        policy=vetting,
        inserted=inserted,
    )
    for stored in stored_adds:
        batch.set(stored.verified, CREATED, stored.entry_id, stored.entry_id in arrived, stored.pk)
        # An entry this chunk inserted is shared only by a move (the policy's, or receiving's
        # after its receipts), which sends its active adds (``entries_transitioned``).
        if stored.entry_id not in created:
            request.added.append(stored.verified.parsed.uuid)


def _store_finish(batch: _StoreBatch, request: _StoreRequest) -> None:
    """After the last chunk: the request's retracts, the outbox rows of its adds, and the results
    of its repeated items."""
    for stored in _apply_retracts(batch, request.retracts, batch.now):
        batch.set(stored.verified, CREATED, stored.entry_id)
    if request.added:
        downstream.adds_settled(uuids=request.added)
    for twin, first in request.twins:
        first_result = batch.results[first.index]
        if first_result.status == REJECTED:
            error = first_result.error
            batch.reject(
                twin.index,
                error["code"],
                error["message"],
                evidence=twin.evidence,
                field=(error["details"] or {}).get("field"),
            )
        else:
            batch.set(twin, DUPLICATE, first_result.entry_id)


def _stored_contributions(uuids: list[uuid_module.UUID]):
    """(uuid, content_hash, entry_id, organisation_id) of those already stored."""
    if connection.vendor != "postgresql":
        return Contribution.objects.filter(uuid__in=uuids).values_list(
            "uuid", "content_hash", "entry_id", "organisation_id"
        )
    # One parameter rather than an IN list of thousands of compiled parameters.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT uuid, content_hash, entry_id, organisation_id FROM federation_contribution "  # noqa: S608
            f"WHERE uuid = ANY({uuid_array_sql()})",  # (fixed SQL)
            [packed_uuids(uuids)],
        )
        return cursor.fetchall()


def _reject_conflict(batch: _StoreBatch, v: Verified, stored_hash: str) -> None:
    batch.reject(
        v.index,
        "uuid_conflict",
        "this uuid was already used for a different contribution",
        evidence={**v.evidence, Key.EXISTING_CONTENT_HASH: stored_hash},
        field="uuid",
    )


_CONTRIBUTION_COLUMNS = [
    "uuid", "organisation_id", "signing_key_id", "entry_id", "action", "labels", "scope",
    "incident_id", "quality", "created_at", "received_at", "canonical", "content_hash",
    "signature", "status", "origin_hub",
]  # fmt: skip


def _insert_contributions(
    verified: list[Verified],
    entries: dict[tuple[str, str], int],
    organisation,
    now,
    *,
    with_pks: bool = False,
) -> list[_Stored]:
    # In UUID order, so that two requests carrying the same UUIDs wait for each other on the
    # unique index in one order (one then fails with a unique violation) rather than deadlock.
    # (A UUID's integer orders as its 16 bytes do, which is PostgreSQL's order.)
    ordered = sorted(verified, key=lambda v: v.parsed.uuid.int)
    status = Contribution.Status  # a row per contribution, its constants looked up once:
    add, active, applied = Contribution.Action.ADD, status.ACTIVE, status.APPLIED
    organisation_id = organisation.pk
    stored = [_Stored(v, None, entries[(v.parsed.signal_type, v.parsed.value)]) for v in ordered]
    rows = (
        (
            (p := v.parsed).uuid, organisation_id, v.key.pk, entry_id, p.action, list(p.labels),
            p.scope, p.incident, p.quality, p.created_at, now, p.canonical.decode(),
            p.content_hash, v.signature, active if p.action == add else applied,
            p.hub,  # the origin hub, as signed (checked against the context's origin)
        )
        for v, _, entry_id in stored
    )  # fmt: skip
    if not with_pks:  # each row made as it is written, the first inserted meanwhile
        copy_stream(Contribution, _CONTRIBUTION_COLUMNS, rows)
        return stored
    pks = copy_rows(Contribution, _CONTRIBUTION_COLUMNS, list(rows), reserve_pks=True)
    return [x._replace(pk=pk) for x, pk in zip(stored, pks or (), strict=True)]


def _link_labels(
    batch: _StoreBatch,
    adds: list[Verified],
    entries: dict[tuple[str, str], int],
    created: set[int],
) -> None:
    """Link the adds' labels to their entries: plainly (COPY) for the entries this chunk
    created, which nobody else can see yet; with ``ON CONFLICT DO NOTHING`` for the others."""
    wanted = {
        (entries[(v.parsed.signal_type, v.parsed.value)], batch.label_ids[slug])
        for v in adds
        for slug in v.parsed.labels
    }
    fresh = sorted(link for link in wanted if link[0] in created)
    known = sorted(link for link in wanted if link[0] not in created)
    copy_rows(EntryLabel, ["entry_id", "label_id"], fresh)
    upsert_rows(EntryLabel, ["entry_id", "label_id"], known, unique=["entry_id", "label_id"])


def _apply_retracts(batch: _StoreBatch, retracts: list[Verified], now) -> list[_Stored]:
    """A retract withdraws the member's own active adds of that signal; an entry with no active add
    left becomes retracted. Retracting what the member never added (or already withdrew) is refused."""
    if not retracts:
        return []
    from federation.vetting.services import entries_mark_retracted_if_unsupported

    organisation = batch.organisation
    entries = {
        (signal_type, value): pk
        for pk, signal_type, value in Entry.objects.select_for_update()
        .filter(signal_type__in={v.parsed.signal_type for v in retracts})  # with the value:
        .filter(value__in={v.parsed.value for v in retracts})  # by index, not every entry read
        .order_by("signal_type", "value")
        .values_list("pk", "signal_type", "value")
    }
    active_adds: dict[int, list[int]] = {}
    for contribution_id, entry_id in Contribution.objects.filter(
        organisation=organisation,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
        entry__in=list(entries.values()),
    ).values_list("id", "entry_id"):
        active_adds.setdefault(entry_id, []).append(contribution_id)

    applicable: list[Verified] = []
    claimed: set[int] = set()
    for v in retracts:
        entry_id = entries.get((v.parsed.signal_type, v.parsed.value))
        if entry_id is None or not active_adds.get(entry_id) or entry_id in claimed:
            batch.reject(
                v.index,
                "nothing_to_retract",
                f"{organisation.slug} has no active add of this signal to retract",
                evidence=v.evidence,
                field="signal",
            )
            continue
        claimed.add(entry_id)
        applicable.append(v)
    stored = _insert_contributions(applicable, entries, organisation, now, with_pks=True)
    if stored:
        Contribution.objects.filter(
            pk__in=[pk for retract in stored for pk in active_adds[retract.entry_id]]
        ).update(
            status=Contribution.Status.WITHDRAWN,
            withdrawn_by=Case(
                *[When(entry_id=retract.entry_id, then=Value(retract.pk)) for retract in stored]
            ),
        )
        downstream.retracts_stored(
            entry_ids=[r.entry_id for r in stored], contribution_ids=[r.pk for r in stored], now=now
        )
        _audit_accepted(batch, stored)
    entries_mark_retracted_if_unsupported(
        entry_ids={retract.entry_id for retract in stored},
        actor=batch.actor,
        now=now,
    )
    return stored


def _audit_accepted(batch: _StoreBatch, stored: Sequence[_Stored]) -> None:
    """One ``contribution.accepted`` event per stored contribution, dated with the contributions'
    received_at: the reports date contributions by it, the log by occurred_at, and the two must
    agree (docs/reports.md, "Dates")."""
    # Its constants looked up once: this runs per item.
    b64encode = binascii.b2a_base64
    uuid_key, key_id, content_hash, signature, action, signal_type, value, labels, entry_id = (
        Key.UUID, Key.KEY_ID, Key.CONTENT_HASH, Key.SIGNATURE, Key.ACTION, Key.SIGNAL_TYPE,
        Key.VALUE, Key.LABELS, Key.ENTRY_ID,
    )  # fmt: skip
    audit_record_alike(
        action=Action.CONTRIBUTION_ACCEPTED,
        actor=batch.actor,
        organisation=batch.organisation.slug,
        object_type=ObjectType.CONTRIBUTION,
        # The signed bytes themselves live in the contribution row; the event commits to them
        # by content_hash (SHA-256 of the canonical bytes), which halves what a bulk ingest
        # writes.
        objects=(  # each made as the COPY writes it (``copy_stream``)
            (
                uuid := (parsed := x.verified.parsed).document["uuid"],
                {
                    uuid_key: uuid,
                    key_id: parsed.key_id,
                    content_hash: parsed.content_hash,
                    signature: b64encode(x.verified.signature, newline=False).decode(),
                    action: parsed.action,
                    signal_type: parsed.signal_type,
                    value: parsed.value,
                    labels: list(parsed.labels),
                    entry_id: x.entry_id,
                },
            )
            for x in stored
        ),
        occurred_at=batch.now,
    )
