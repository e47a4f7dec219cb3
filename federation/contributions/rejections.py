"""Rejections of contributions, as audit evidence (docs/api.md, "What is audited").

An item that carried a claim (a UUID, a signature, a key id) is rejected with its own
``contribution.rejected`` event holding that evidence; items too malformed to claim anything are
summarised in one ``contribution.malformed_items`` event per request, so that junk cannot each
cost a permanent entry; a request refused as a whole is one ``contribution.request_rejected``
event. The codes and the HTTP status each is answered with are ``REJECTION_STATUS``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from federation.contributions.checks import Rejection
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor

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

# Bounds of the one event summarising a request's malformed items: distinct reasons kept with
# their message (beyond that, grouped by code and field only), and raw samples kept.
_MALFORMED_REASONS = 32
_MALFORMED_SAMPLES = 20


def rejection_record(
    *,
    actor: Actor,
    organisation: str,
    index: int,
    code: str,
    message: str,
    field: str | None,
    evidence: Mapping[str, Any],
) -> AuditRecord:
    """The ``contribution.rejected`` event of an item that carried a claim, with its evidence
    (canonical bytes, signature, key id); ``organisation`` is the member it names."""
    return AuditRecord(
        action=Action.CONTRIBUTION_REJECTED,
        actor=actor,
        organisation=organisation,
        object_type=ObjectType.CONTRIBUTION,
        object_id=evidence.get(Key.UUID) or "",
        data={
            Key.CODE: code,
            Key.MESSAGE: message,
            Key.FIELD: field,
            Key.INDEX: index,
            **evidence,
        },
    )


def contribution_request_rejected(
    *, actor: Actor, code: str, message: str, request_evidence: Mapping[str, Any]
) -> None:
    """Record a contribution-write request refused as a whole (not JSON, duplicate keys, wrong
    shape, too many items, too large): one event with bounded evidence of the body."""
    with transaction.atomic():
        audit_record(
            AuditRecord(
                action=Action.CONTRIBUTION_REQUEST_REJECTED,
                actor=actor,
                organisation=actor.organisation_slug,
                object_type=ObjectType.REQUEST,
                object_id=str(request_evidence.get(Key.SHA256) or ""),
                data={Key.CODE: code, Key.MESSAGE: message[:300], **request_evidence},
            )
        )


def malformed_items_record(
    *,
    actor: Actor,
    organisation: str,
    malformed: Sequence[Rejection],
    item_count: int,
    request_evidence: Mapping[str, Any] | None,
) -> AuditRecord:
    """One event for all of a request's malformed items (``malformed``, in index order): how
    many, why (each reason with the ranges of item indexes it applies to), a few raw samples, and
    the body's digest (``request_evidence``)."""
    groups: dict[tuple[str, str | None, str | None], list[list[int]]] = {}
    for rejection in malformed:
        key = (rejection.code, rejection.field, rejection.message)
        if key not in groups and len(groups) >= _MALFORMED_REASONS:
            key = (rejection.code, rejection.field, None)
        ranges = groups.setdefault(key, [])
        if ranges and ranges[-1][1] == rejection.index - 1:
            ranges[-1][1] = rejection.index
        else:
            ranges.append([rejection.index, rejection.index])
    reasons = [
        {
            Key.CODE: code,
            Key.FIELD: field_name,
            Key.MESSAGE: message,
            Key.COUNT: sum(end - start + 1 for start, end in ranges),
            Key.INDEXES: ranges,
        }
        for (code, field_name, message), ranges in groups.items()
    ]
    samples = [
        {
            Key.INDEX: r.index,
            Key.UUID: r.evidence.get(Key.UUID),
            Key.SIGNATURE: r.evidence.get(Key.SIGNATURE),
        }
        for r in malformed
        if r.evidence.get(Key.UUID) or r.evidence.get(Key.SIGNATURE)
    ][:_MALFORMED_SAMPLES]
    request = dict(request_evidence) if request_evidence else None
    return AuditRecord(
        action=Action.CONTRIBUTION_MALFORMED_ITEMS,
        actor=actor,
        organisation=organisation,
        object_type=ObjectType.REQUEST,
        object_id=str((request or {}).get(Key.SHA256) or ""),
        data={
            Key.COUNT: len(malformed),
            Key.ITEMS: item_count,
            Key.REASONS: reasons,
            Key.SAMPLES: samples,
            Key.REQUEST: request,
        },
    )
