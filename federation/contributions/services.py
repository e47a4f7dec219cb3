"""Submitting signed contributions, one or thousands at a time.

Every item is checked in a tight loop (structure, key, time window, Ed25519 signature) before the
database is touched; the valid items are then written in one transaction with bulk inserts, so a
request costs a fixed number of queries whatever its size. Items are independent: a bad item is
reported (and audited as evidence) while the good ones are stored.

Within one request, adds are applied before retracts (docs/api.md).
"""

import base64
import logging
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from federation.contributions.models import Contribution, Entry, EntryLabel, Label
from federation.signing import (
    MalformedContribution,
    ParsedContribution,
    decode_signature,
    parse_contribution,
    verify_signature,
)
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
    "incident_not_active": 400,
    "uuid_conflict": 409,
    "nothing_to_retract": 409,
}


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


@dataclass
class _Verified:
    index: int
    parsed: ParsedContribution
    signature: bytes
    key: SigningKey


@dataclass
class _Batch:
    """What one request is doing, shared by the steps below."""

    principal: Principal
    organisation: Organisation
    now: datetime
    results: list[ItemResult | None]
    rejections: list[AuditRecord] = field(default_factory=list)

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
                data={"code": code, "message": message, "field": field, **evidence},
            )
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
    for attempt in range(3):
        try:
            with transaction.atomic():
                _store(batch, verified)
                audit_record_many(batch.rejections)
            break
        except IntegrityError:
            # A concurrent request stored one of our UUIDs (or entries) first. Nothing of ours was
            # kept; run the write step again, which now sees their rows as duplicates or conflicts.
            if attempt == 2:
                raise
            logger.info("contribution batch raced a concurrent writer; retrying")
            batch.rejections = [
                r for r in batch.rejections if r.data.get("code") != "uuid_conflict"
            ]
            for v in verified:
                batch.results[v.index] = None
    return [r for r in batch.results if r is not None]


def _verify_items(batch: _Batch, items: Sequence[object]) -> list[_Verified]:
    """The tight loop: everything that needs no database beyond three preloads."""
    organisation = batch.organisation
    keys = {
        key.key_id: (key, Ed25519PublicKey.from_public_bytes(key.public_key_bytes))
        for key in SigningKey.objects.filter(organisation=organisation)
    }
    labels = set(Label.objects.filter(active=True).values_list("slug", flat=True))
    incidents = {incident.pk: incident for incident in Incident.objects.all()}
    skew = timedelta(seconds=settings.CONTRIBUTION_CLOCK_SKEW_SECONDS)
    max_age = timedelta(seconds=settings.CONTRIBUTION_MAX_AGE_SECONDS)
    now = batch.now
    verified: list[_Verified] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.keys() != {"contribution", "signature"}:
            batch.reject(
                index,
                "invalid",
                "each item is an object with exactly contribution and signature",
                evidence={},
                field="item",
            )
            continue
        try:
            parsed = parse_contribution(item["contribution"])
        except MalformedContribution as exc:
            batch.reject(
                index, "invalid", exc.message, evidence=_raw_evidence(item), field=exc.field
            )
            continue
        evidence = {
            "uuid": str(parsed.uuid),
            "key_id": parsed.key_id,
            "canonical": parsed.canonical.decode(),
            "signature": item["signature"] if isinstance(item["signature"], str) else None,
        }
        try:
            signature = decode_signature(item["signature"])
        except MalformedContribution as exc:
            batch.reject(index, "invalid", exc.message, evidence=evidence, field=exc.field)
            continue
        if parsed.hub != settings.HUB_ID:
            batch.reject(
                index,
                "wrong_hub",
                f"this hub is {settings.HUB_ID!r}",
                evidence=evidence,
                field="hub",
            )
            continue
        if parsed.member != organisation.slug:
            batch.reject(
                index,
                "member_mismatch",
                f"you submit for {organisation.slug!r}",
                evidence=evidence,
                field="member",
            )
            continue
        known = keys.get(parsed.key_id)
        if known is None:
            batch.reject(
                index,
                "unknown_key",
                f"no key {parsed.key_id} is registered to {organisation.slug}",
                evidence=evidence,
                field="key_id",
            )
            continue
        key, public_key = known
        if not (key.is_active_at(parsed.created_at) and key.is_active_at(now)):
            batch.reject(
                index,
                "key_not_active",
                "the key was not active when this was signed, or is revoked now",
                evidence=evidence,
                field="key_id",
            )
            continue
        if parsed.created_at > now + skew or parsed.created_at < now - max_age:
            batch.reject(
                index,
                "clock_skew",
                f"created_at must lie between {int(max_age.total_seconds())} s ago and "
                f"{int(skew.total_seconds())} s ahead of the hub's clock",
                evidence=evidence,
                field="created_at",
            )
            continue
        if not verify_signature(public_key, signature, parsed.canonical):
            batch.reject(
                index,
                "bad_signature",
                "the signature does not verify over the canonical bytes",
                evidence=evidence,
                field="signature",
            )
            continue
        unknown_labels = [label for label in parsed.labels if label not in labels]
        if unknown_labels:
            batch.reject(
                index,
                "unknown_label",
                f"not in the hub's taxonomy: {', '.join(unknown_labels)}",
                evidence=evidence,
                field="labels",
            )
            continue
        if parsed.incident is not None:
            incident = incidents.get(parsed.incident)
            if incident is None:
                batch.reject(
                    index,
                    "unknown_incident",
                    "no such incident",
                    evidence=evidence,
                    field="incident",
                )
                continue
        verified.append(_Verified(index=index, parsed=parsed, signature=signature, key=key))
    return verified


def _raw_evidence(item: dict) -> dict[str, Any]:
    contribution = item.get("contribution")
    raw_uuid = contribution.get("uuid") if isinstance(contribution, dict) else None
    return {"uuid": raw_uuid if isinstance(raw_uuid, str) and len(raw_uuid) <= 64 else None}


def _store(batch: _Batch, verified: list[_Verified]) -> None:
    organisation = batch.organisation
    now = batch.now
    accepted: list[_Verified] = []
    # Same UUID twice: identical bytes are one contribution; different bytes are a conflict.
    seen: dict[uuid_module.UUID, _Verified] = {}
    existing = {
        row[0]: row
        for row in Contribution.objects.filter(
            uuid__in=[v.parsed.uuid for v in verified]
        ).values_list("uuid", "content_hash", "entry_id", "organisation_id")
    }
    twins: list[tuple[_Verified, _Verified]] = []  # (in-request duplicate, its first occurrence)
    for v in verified:
        first = seen.get(v.parsed.uuid)
        stored = existing.get(v.parsed.uuid)
        if stored is not None:
            same = stored[1] == v.parsed.content_hash and stored[3] == organisation.pk
        elif first is not None:
            same = first.parsed.content_hash == v.parsed.content_hash
        else:
            seen[v.parsed.uuid] = v
            accepted.append(v)
            continue
        if not same:
            batch.reject(
                v.index,
                "uuid_conflict",
                "this uuid was already used for a different contribution",
                evidence=_evidence(v),
                field="uuid",
            )
        elif stored is not None:
            batch.results[v.index] = ItemResult(
                index=v.index, status=DUPLICATE, uuid=str(v.parsed.uuid), entry_id=stored[2]
            )
        else:
            twins.append((v, first))

    adds = [v for v in accepted if v.parsed.action == Contribution.Action.ADD]
    retracts = [v for v in accepted if v.parsed.action == Contribution.Action.RETRACT]
    entries = _upsert_entries(adds, now)
    stored_adds = _insert_contributions(adds, entries, organisation, now)
    _link_labels(adds, entries)
    stored_retracts = _apply_retracts(batch, retracts, now)

    records = [_accepted_record(batch, v, c) for v, c in (*stored_adds, *stored_retracts)]
    for v, contribution in (*stored_adds, *stored_retracts):
        batch.results[v.index] = ItemResult(
            index=v.index, status=CREATED, uuid=str(v.parsed.uuid), entry_id=contribution.entry_id
        )
    for duplicate, first in twins:
        first_result = batch.results[first.index]
        batch.results[duplicate.index] = (
            ItemResult(
                index=duplicate.index,
                status=DUPLICATE,
                uuid=first_result.uuid,
                entry_id=first_result.entry_id,
            )
            if first_result.status == CREATED
            else ItemResult(**{**first_result.__dict__, "index": duplicate.index})
        )
    audit_record_many(records)

    entry_incidents: dict[int, uuid_module.UUID | None] = {}
    for v, contribution in stored_adds:
        if entry_incidents.get(contribution.entry_id) is None:
            entry_incidents[contribution.entry_id] = v.parsed.incident
    apply_policy_to_entries(
        entry_incidents=entry_incidents,
        organisation=organisation,
        actor=batch.principal.actor,
        now=now,
    )


def _upsert_entries(adds: list[_Verified], now: datetime) -> dict[tuple[str, str], Entry]:
    signals = {(v.parsed.signal_type, v.parsed.value) for v in adds}
    if not signals:
        return {}
    # Sorted so that concurrent batches take row locks in one order and cannot deadlock.
    rows = [
        Entry(signal_type=t, value=value, created_at=now, updated_at=now)
        for t, value in sorted(signals)
    ]
    Entry.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["signal_type", "value"],
        update_fields=["updated_at"],
        batch_size=2000,
    )
    if any(row.pk is None for row in rows):  # backends that cannot return ids on upsert
        stored = Entry.objects.filter(value__in=[value for _, value in signals])
        by_signal = {(e.signal_type, e.value): e for e in stored}
        return {signal: by_signal[signal] for signal in signals}
    return {(row.signal_type, row.value): row for row in rows}


def _insert_contributions(
    verified: list[_Verified], entries: dict[tuple[str, str], Entry], organisation, now
) -> list[tuple[_Verified, Contribution]]:
    rows = [
        Contribution(
            uuid=v.parsed.uuid,
            organisation=organisation,
            signing_key=v.key,
            entry=entries[(v.parsed.signal_type, v.parsed.value)],
            action=v.parsed.action,
            labels=list(v.parsed.labels),
            scope=v.parsed.scope,
            incident_id=v.parsed.incident,
            quality=v.parsed.quality,
            created_at=v.parsed.created_at,
            received_at=now,
            canonical=v.parsed.canonical.decode(),
            content_hash=v.parsed.content_hash,
            signature=v.signature,
            status=Contribution.Status.ACTIVE
            if v.parsed.action == Contribution.Action.ADD
            else Contribution.Status.APPLIED,
            origin_hub=settings.HUB_ID,
        )
        for v in verified
    ]
    Contribution.objects.bulk_create(rows, batch_size=2000)
    return list(zip(verified, rows, strict=True))


def _link_labels(adds: list[_Verified], entries: dict[tuple[str, str], Entry]) -> None:
    wanted = {
        (entries[(v.parsed.signal_type, v.parsed.value)].pk, slug)
        for v in adds
        for slug in v.parsed.labels
    }
    if not wanted:
        return
    label_ids = dict(
        Label.objects.filter(slug__in={slug for _, slug in wanted}).values_list("slug", "id")
    )
    EntryLabel.objects.bulk_create(
        [
            EntryLabel(entry_id=entry_id, label_id=label_ids[slug])
            for entry_id, slug in sorted(wanted)
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )


def _apply_retracts(
    batch: _Batch, retracts: list[_Verified], now
) -> list[tuple[_Verified, Contribution]]:
    """A retract withdraws the member's own active adds of that signal; an entry with no active add
    left becomes retracted. Retracting what the member never added (or already withdrew) is refused."""
    if not retracts:
        return []
    from federation.vetting.services import entries_mark_retracted_if_unsupported

    organisation = batch.organisation
    entries = {
        (e.signal_type, e.value): e
        for e in Entry.objects.select_for_update().filter(
            value__in={v.parsed.value for v in retracts}
        )
    }
    active_adds: dict[int, list[int]] = {}
    for contribution_id, entry_id in Contribution.objects.filter(
        organisation=organisation,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
        entry__in=[e.pk for e in entries.values()],
    ).values_list("id", "entry_id"):
        active_adds.setdefault(entry_id, []).append(contribution_id)

    applicable: list[_Verified] = []
    claimed: set[int] = set()
    for v in retracts:
        entry = entries.get((v.parsed.signal_type, v.parsed.value))
        if entry is None or not active_adds.get(entry.pk) or entry.pk in claimed:
            batch.reject(
                v.index,
                "nothing_to_retract",
                f"{organisation.slug} has no active add of this signal to retract",
                evidence=_evidence(v),
                field="signal",
            )
            continue
        claimed.add(entry.pk)
        applicable.append(v)
    stored = _insert_contributions(applicable, entries, organisation, now)
    if stored:
        Contribution.objects.filter(
            pk__in=[pk for _, retract in stored for pk in active_adds[retract.entry_id]]
        ).update(
            status=Contribution.Status.WITHDRAWN,
            withdrawn_by=Case(
                *[When(entry_id=retract.entry_id, then=Value(retract.pk)) for _, retract in stored]
            ),
        )
    entries_mark_retracted_if_unsupported(
        entry_ids={retract.entry_id for _, retract in stored}, actor=batch.principal.actor, now=now
    )
    return stored


def _evidence(v: _Verified) -> dict[str, Any]:
    return {
        "uuid": str(v.parsed.uuid),
        "key_id": v.parsed.key_id,
        "canonical": v.parsed.canonical.decode(),
        "signature": base64.b64encode(v.signature).decode(),
    }


def _accepted_record(batch: _Batch, v: _Verified, contribution: Contribution) -> AuditRecord:
    return AuditRecord(
        action="contribution.accepted",
        actor=batch.principal.actor,
        organisation=batch.organisation.slug,
        object_type="contribution",
        object_id=str(v.parsed.uuid),
        data={
            "uuid": str(v.parsed.uuid),
            "action": v.parsed.action,
            "signal_type": v.parsed.signal_type,
            "value": v.parsed.value,
            "labels": list(v.parsed.labels),
            "entry_id": contribution.entry_id,
            "key_id": v.parsed.key_id,
            "content_hash": v.parsed.content_hash,
            "canonical": v.parsed.canonical.decode(),
            "signature": base64.b64encode(v.signature).decode(),
        },
    )
