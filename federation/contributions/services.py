"""Submitting signed contributions, one or thousands at a time.

Every item is checked in a tight loop (structure, key, time window, Ed25519 signature) before the
database is touched; the valid items are then written in one transaction with bulk inserts, so a
request costs a fixed number of queries whatever its size. Items are independent: a bad item is
reported (and audited with its evidence) while the good ones are stored.

Within one request, adds are applied before retracts (docs/api.md): a request that adds a signal
and retracts it leaves the entry retracted.
"""

import base64
import logging
import re
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from federation.bulk_insert import copy_rows, upsert_rows
from federation.contributions.models import Contribution, Entry, EntryLabel, Label
from federation.signing import (
    MalformedContribution,
    ParsedContribution,
    SignatureChecks,
    decode_signature,
    parse_contribution,
)
from federation.sync.changes import sync_changes_record
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.vetting.models import Incident
from federation.vetting.policy import apply_policy_to_entries
from members.models import Organisation, SigningKey
from members.principals import Principal

logger = logging.getLogger(__name__)

# Statuses of one item's result.
CREATED = "created"
DUPLICATE = "duplicate"
REJECTED = "rejected"

# Rejection codes and the HTTP status the single-item endpoint answers with (docs/api.md).
REJECTION_STATUS = {
    "invalid": 400,
    "wrong_hub": 400,
    "member_mismatch": 403,
    "unknown_key": 400,
    "key_not_active": 400,
    "clock_skew": 400,
    "bad_signature": 400,
    "unknown_label": 400,
    "unknown_incident": 400,
    "uuid_conflict": 409,
    "nothing_to_retract": 409,
}

# How often the write step is run again after losing a race to a concurrent request.
_WRITE_ATTEMPTS = 3
# PostgreSQL SQLSTATEs worth a retry: unique_violation (a concurrent request stored one of our
# UUIDs first), deadlock_detected and serialization_failure.
_RETRYABLE_SQLSTATES = frozenset({"23505", "40P01", "40001"})
# Raw values copied into evidence only when they look like what they claim to be: rejected input
# may be anything, and PostgreSQL's jsonb refuses NUL characters and lone surrogates.
_EVIDENCE_UUID = re.compile(r"[0-9a-fA-F-]{1,64}")
_EVIDENCE_SIGNATURE = re.compile(r"[A-Za-z0-9+/=_-]{1,200}")


@dataclass
class ItemResult:
    index: int
    status: str
    uuid: str | None = None
    entry_id: int | None = None
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"index": self.index, "status": self.status, "uuid": self.uuid}
        if self.entry_id is not None:
            result["entry_id"] = self.entry_id
        if self.error is not None:
            result["error"] = self.error
        return result


@dataclass(slots=True)
class _Verified:
    index: int
    parsed: ParsedContribution
    signature: bytes
    key: SigningKey

    @property
    def evidence(self) -> dict[str, Any]:
        return {
            **_parsed_evidence(self.parsed),
            "signature": base64.b64encode(self.signature).decode(),
        }


class _Stored(NamedTuple):
    verified: "_Verified"
    pk: int | None  # known for retracts only (adds need none, and drawing ids costs)
    entry_id: int


@dataclass
class _Batch:
    """What one request is doing, shared by the steps below."""

    principal: Principal
    organisation: Organisation
    now: datetime
    results: list[ItemResult | None]
    rejections: list[AuditRecord] = field(default_factory=list)
    label_ids: dict[str, int] = field(default_factory=dict)

    def reject(self, index: int, code: str, message: str, *, evidence: dict[str, Any], field=None):
        error = {"code": code, "message": message, "details": {"field": field} if field else None}
        self.results[index] = ItemResult(
            index=index, status=REJECTED, uuid=evidence.get("uuid"), error=error
        )
        self.rejections.append(
            AuditRecord(
                action="contribution.rejected",
                actor=self.principal.actor,
                organisation=self.organisation.slug,
                object_type="contribution",
                object_id=evidence.get("uuid") or "",
                data={"code": code, "message": message, "field": field, "index": index, **evidence},
            )
        )

    def set(self, v: "_Verified", status: str, entry_id: int | None) -> None:
        self.results[v.index] = ItemResult(
            index=v.index, status=status, uuid=str(v.parsed.uuid), entry_id=entry_id
        )


def contributions_submit(*, principal: Principal, items: Sequence[object]) -> list[ItemResult]:
    """Check and store ``items`` (each ``{"contribution": {...}, "signature": "..."}``) for the
    principal's organisation. Returns one result per item, in input order."""
    organisation = principal.organisation
    assert organisation is not None, "only members submit contributions"
    batch = _Batch(
        principal=principal,
        organisation=organisation,
        now=timezone.now(),
        results=[None] * len(items),
    )
    verified = _verify_items(batch, items)
    verification_rejections = len(batch.rejections)
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                _store(batch, verified)
                audit_record_many(batch.rejections)
            break
        except (IntegrityError, OperationalError) as exc:
            # A concurrent request stored one of our UUIDs first (unique violation), or locked
            # rows against us. The transaction rolled back, so nothing of ours was kept: forget
            # what the write step decided and run it again; it now sees the other request's rows
            # as duplicates or conflicts.
            if attempt == _WRITE_ATTEMPTS or not _is_lost_race(exc):
                raise
            logger.info("contribution batch raced a concurrent writer (attempt %d)", attempt)
            del batch.rejections[verification_rejections:]
            for v in verified:
                batch.results[v.index] = None
    assert all(result is not None for result in batch.results)
    return batch.results  # type: ignore[return-value]


def _is_lost_race(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _verify_items(batch: _Batch, items: Sequence[object]) -> list[_Verified]:
    """The tight loop: everything that needs no database beyond two preloads (the member's keys
    and the label taxonomy; incidents only when an item names one)."""
    organisation = batch.organisation
    keys = {
        key.key_id: (key, Ed25519PublicKey.from_public_bytes(key.public_key_bytes))
        for key in SigningKey.objects.filter(organisation=organisation)
    }
    batch.label_ids = dict(Label.objects.filter(active=True).values_list("slug", "id"))
    labels = batch.label_ids
    incident_ids: set[uuid_module.UUID] | None = None
    now = batch.now
    latest = now + timedelta(seconds=settings.CONTRIBUTION_CLOCK_SKEW_SECONDS)
    earliest = now - timedelta(seconds=settings.CONTRIBUTION_MAX_AGE_SECONDS)
    hub_id = settings.HUB_ID
    member = organisation.slug
    reject = batch.reject
    verified: list[_Verified] = []
    checks = SignatureChecks()
    candidates: list[tuple[int, ParsedContribution, bytes, SigningKey, tuple | None]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.keys() != {"contribution", "signature"}:
            reject(
                index,
                "invalid",
                "each item is an object with exactly contribution and signature",
                evidence=_raw_evidence(item),
                field="item",
            )
            continue
        try:
            parsed = parse_contribution(item["contribution"])
        except MalformedContribution as exc:
            reject(index, "invalid", exc.message, evidence=_raw_evidence(item), field=exc.field)
            continue
        try:
            signature = decode_signature(item["signature"])
        except MalformedContribution as exc:
            evidence = {**_parsed_evidence(parsed), **_raw_evidence(item)}
            reject(index, "invalid", exc.message, evidence=evidence, field=exc.field)
            continue
        failure = None
        known = keys.get(parsed.key_id)
        if parsed.hub != hub_id:
            failure = ("wrong_hub", f"this hub is {hub_id!r}", "hub")
        elif parsed.member != member:
            failure = ("member_mismatch", f"you submit for {member!r}", "member")
        elif known is None:
            failure = (
                "unknown_key",
                f"no key {parsed.key_id} is registered to {member}",
                "key_id",
            )
        elif not (known[0].is_active_at(parsed.created_at) and known[0].is_active_at(now)):
            failure = (
                "key_not_active",
                "the key was not active when this was signed, or is revoked now",
                "key_id",
            )
        elif not earliest <= parsed.created_at <= latest:
            failure = (
                "clock_skew",
                f"created_at must lie between {settings.CONTRIBUTION_MAX_AGE_SECONDS} s ago and "
                f"{settings.CONTRIBUTION_CLOCK_SKEW_SECONDS} s ahead of the hub's clock",
                "created_at",
            )
        if failure is not None:
            _reject_checked(batch, index, parsed, signature, failure)
            continue
        # Labels and incidents are judged only once the signature holds: a forged item is
        # reported as forged, whatever else is wrong with it.
        deferred = None
        if any(label not in labels for label in parsed.labels):
            unknown = ", ".join(label for label in parsed.labels if label not in labels)
            deferred = ("unknown_label", f"not in the hub's taxonomy: {unknown}", "labels")
        elif parsed.incident is not None:
            if incident_ids is None:
                incident_ids = set(Incident.objects.values_list("pk", flat=True))
            if parsed.incident not in incident_ids:
                deferred = ("unknown_incident", "no such incident", "incident")
        checks.add(known[1], signature, parsed.canonical)
        candidates.append((index, parsed, signature, known[0], deferred))

    for (index, parsed, signature, key, deferred), valid in zip(
        candidates, checks.results(), strict=True
    ):
        if not valid:
            failure = (
                "bad_signature",
                "the signature does not verify over the canonical bytes",
                "signature",
            )
            _reject_checked(batch, index, parsed, signature, failure)
        elif deferred is not None:
            _reject_checked(batch, index, parsed, signature, deferred)
        else:
            verified.append(_Verified(index, parsed, signature, key))
    return verified


def _reject_checked(batch: _Batch, index: int, parsed, signature: bytes, failure: tuple) -> None:
    code, message, field_name = failure
    evidence = {**_parsed_evidence(parsed), "signature": base64.b64encode(signature).decode()}
    batch.reject(index, code, message, evidence=evidence, field=field_name)


def _raw_evidence(item: object) -> dict[str, Any]:
    """What can safely be kept of an item too malformed to parse: its uuid and signature text."""
    contribution = item.get("contribution") if isinstance(item, dict) else None
    raw_uuid = contribution.get("uuid") if isinstance(contribution, dict) else None
    raw_signature = item.get("signature") if isinstance(item, dict) else None
    return {
        "uuid": raw_uuid
        if isinstance(raw_uuid, str) and _EVIDENCE_UUID.fullmatch(raw_uuid)
        else None,
        "signature": raw_signature
        if isinstance(raw_signature, str) and _EVIDENCE_SIGNATURE.fullmatch(raw_signature)
        else None,
    }


def _parsed_evidence(parsed: ParsedContribution) -> dict[str, Any]:
    return {
        "uuid": str(parsed.uuid),
        "key_id": parsed.key_id,
        "content_hash": parsed.content_hash,
        "canonical": parsed.canonical.decode(),
    }


def _store(batch: _Batch, verified: list[_Verified]) -> None:
    """Write the verified items: a fixed number of bulk statements whatever their number."""
    organisation = batch.organisation
    now = batch.now
    existing = {row[0]: row[1:] for row in _stored_contributions([v.parsed.uuid for v in verified])}
    # Same UUID twice: identical bytes are one contribution; different bytes are a conflict.
    first_seen: dict[uuid_module.UUID, _Verified] = {}
    fresh: list[_Verified] = []
    twins: list[tuple[_Verified, _Verified]] = []  # (in-request repeat, its first occurrence)
    for v in verified:
        stored = existing.get(v.parsed.uuid)
        if stored is not None:
            content_hash, entry_id, organisation_id = stored
            if content_hash == v.parsed.content_hash and organisation_id == organisation.pk:
                batch.set(v, DUPLICATE, entry_id)
            else:
                _reject_conflict(batch, v, content_hash)
            continue
        first = first_seen.setdefault(v.parsed.uuid, v)
        if first is v:
            fresh.append(v)
        elif first.parsed.content_hash == v.parsed.content_hash:
            twins.append((v, first))
        else:
            _reject_conflict(batch, v, first.parsed.content_hash)

    adds = [v for v in fresh if v.parsed.action == Contribution.Action.ADD]
    retracts = [v for v in fresh if v.parsed.action == Contribution.Action.RETRACT]
    entries = _upsert_entries(adds, now)
    stored_adds = _insert_contributions(adds, entries, organisation, now)
    _link_labels(batch, adds, entries)
    sync_changes_record(entry_ids=entries.values(), reason="contributed", now=now)
    # The policy (reopen, auto-vet) sees the adds before this request's retracts are applied, so
    # that "adds before retracts" holds for the entry's state too.
    entry_incidents: dict[int, uuid_module.UUID | None] = {}
    for stored in stored_adds:
        if entry_incidents.get(stored.entry_id) is None:
            entry_incidents[stored.entry_id] = stored.verified.parsed.incident
    apply_policy_to_entries(
        entry_incidents=entry_incidents,
        organisation=organisation,
        actor=batch.principal.actor,
        now=now,
    )
    stored_retracts = _apply_retracts(batch, retracts, now)

    stored_all = (*stored_adds, *stored_retracts)
    for stored in stored_all:
        batch.set(stored.verified, CREATED, stored.entry_id)
    for twin, first in twins:
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
    audit_record_many(_accepted_record(batch, x.verified, x.entry_id) for x in stored_all)


def _stored_contributions(uuids: list[uuid_module.UUID]):
    """(uuid, content_hash, entry_id, organisation_id) of those already stored."""
    if connection.vendor != "postgresql":
        return Contribution.objects.filter(uuid__in=uuids).values_list(
            "uuid", "content_hash", "entry_id", "organisation_id"
        )
    # One array parameter rather than an IN list of thousands of compiled parameters.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT uuid, content_hash, entry_id, organisation_id FROM federation_contribution "
            "WHERE uuid = ANY(%s::uuid[])",
            [[str(u) for u in uuids]],
        )
        return cursor.fetchall()


def _reject_conflict(batch: _Batch, v: _Verified, stored_hash: str) -> None:
    batch.reject(
        v.index,
        "uuid_conflict",
        "this uuid was already used for a different contribution",
        evidence={**v.evidence, "existing_content_hash": stored_hash},
        field="uuid",
    )


def _upsert_entries(adds: list[_Verified], now: datetime) -> dict[tuple[str, str], int]:
    """One entry per signal: insert the new ones, touch the existing; returns their ids."""
    signals = sorted({(v.parsed.signal_type, v.parsed.value) for v in adds})
    rows = [(t, value, Entry.State.PENDING, 1, now, now, now) for t, value in signals]
    returned = upsert_rows(
        Entry,
        [
            "signal_type",
            "value",
            "state",
            "review_round",
            "created_at",
            "updated_at",
            "state_changed_at",
        ],
        rows,
        unique=["signal_type", "value"],
        update=["updated_at"],
    )
    return {(signal_type, value): pk for pk, signal_type, value in returned}


_CONTRIBUTION_COLUMNS = [
    "uuid", "organisation_id", "signing_key_id", "entry_id", "action", "labels", "scope",
    "incident_id", "quality", "created_at", "received_at", "canonical", "content_hash",
    "signature", "status", "origin_hub",
]  # fmt: skip


def _insert_contributions(
    verified: list[_Verified],
    entries: dict[tuple[str, str], int],
    organisation,
    now,
    *,
    with_pks: bool = False,
) -> list[_Stored]:
    # In UUID order, so that two requests carrying the same UUIDs wait for each other on the
    # unique index in one order (one then fails with a unique violation) rather than deadlock.
    ordered = sorted(verified, key=lambda v: v.parsed.uuid.bytes)
    entry_ids = [entries[(v.parsed.signal_type, v.parsed.value)] for v in ordered]
    hub_id = settings.HUB_ID
    rows = [
        (
            v.parsed.uuid,
            organisation.pk,
            v.key.pk,
            entry_id,
            v.parsed.action,
            list(v.parsed.labels),
            v.parsed.scope,
            v.parsed.incident,
            v.parsed.quality,
            v.parsed.created_at,
            now,
            v.parsed.canonical.decode(),
            v.parsed.content_hash,
            v.signature,
            Contribution.Status.ACTIVE
            if v.parsed.action == Contribution.Action.ADD
            else Contribution.Status.APPLIED,
            hub_id,
        )
        for v, entry_id in zip(ordered, entry_ids, strict=True)
    ]
    pks = copy_rows(Contribution, _CONTRIBUTION_COLUMNS, rows, reserve_pks=with_pks)
    return [
        _Stored(v, pks[i] if pks else None, entry_id)
        for i, (v, entry_id) in enumerate(zip(ordered, entry_ids, strict=True))
    ]


def _link_labels(batch: _Batch, adds: list[_Verified], entries: dict[tuple[str, str], int]) -> None:
    wanted = {
        (entries[(v.parsed.signal_type, v.parsed.value)], batch.label_ids[slug])
        for v in adds
        for slug in v.parsed.labels
    }
    upsert_rows(
        EntryLabel, ["entry_id", "label_id"], sorted(wanted), unique=["entry_id", "label_id"]
    )


def _apply_retracts(batch: _Batch, retracts: list[_Verified], now) -> list[_Stored]:
    """A retract withdraws the member's own active adds of that signal; an entry with no active add
    left becomes retracted. Retracting what the member never added (or already withdrew) is refused."""
    if not retracts:
        return []
    from federation.vetting.services import entries_mark_retracted_if_unsupported

    organisation = batch.organisation
    entries = {
        (signal_type, value): pk
        for pk, signal_type, value in Entry.objects.select_for_update()
        .filter(value__in={v.parsed.value for v in retracts})
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

    applicable: list[_Verified] = []
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
        sync_changes_record(entry_ids=[r.entry_id for r in stored], reason="contributed", now=now)
    entries_mark_retracted_if_unsupported(
        entry_ids={retract.entry_id for retract in stored}, actor=batch.principal.actor, now=now
    )
    return stored


def _accepted_record(batch: _Batch, v: _Verified, entry_id: int) -> AuditRecord:
    return AuditRecord(
        action="contribution.accepted",
        actor=batch.principal.actor,
        organisation=batch.organisation.slug,
        object_type="contribution",
        object_id=str(v.parsed.uuid),
        # The signed bytes themselves live in the contribution row; the event commits to them by
        # content_hash (SHA-256 of the canonical bytes), which halves what a bulk ingest writes.
        data={
            "uuid": str(v.parsed.uuid),
            "key_id": v.parsed.key_id,
            "content_hash": v.parsed.content_hash,
            "signature": base64.b64encode(v.signature).decode(),
            "action": v.parsed.action,
            "signal_type": v.parsed.signal_type,
            "value": v.parsed.value,
            "labels": list(v.parsed.labels),
            "entry_id": entry_id,
        },
    )
