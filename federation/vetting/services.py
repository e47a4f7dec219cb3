"""Services that move entries between vetting states, record feedback and disputes, and change
the hub's vetting policy, incidents and label taxonomy.

Each runs in one transaction (or the caller's) and writes its audit events in it. The API and the
Django admin both call these, so a change made either way leaves the same trail (docs/vetting.md).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from federation.contributions.models import Contribution, Entry, Label
from federation.errors import Conflict, Forbidden, InvalidInput, NotFound
from federation.sync.changes import sync_changes_record
from federation.transparency.audit import AuditRecord, audit_record, audit_record_many
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.policy import approving_organisations, effective_quorum, policy_snapshot
from members.models import Organisation


def entries_mark_retracted_if_unsupported(
    *, entry_ids: set[int], actor: dict, now: datetime
) -> None:
    """Entries left with no active add leave the active set (they stay in history)."""
    if not entry_ids:
        return
    supported = set(
        Contribution.objects.filter(
            entry_id__in=entry_ids,
            action=Contribution.Action.ADD,
            status=Contribution.Status.ACTIVE,
        ).values_list("entry_id", flat=True)
    )
    unsupported = sorted(entry_ids - supported)
    changed = list(
        Entry.objects.filter(pk__in=unsupported)
        .exclude(state=Entry.State.RETRACTED)
        .values_list("pk", "state")
    )
    Entry.objects.filter(pk__in=[pk for pk, _ in changed]).update(
        state=Entry.State.RETRACTED, state_changed_at=now, updated_at=now
    )
    sync_changes_record(entry_ids=[pk for pk, _ in changed], reason="retracted", now=now)
    audit_record_many(
        AuditRecord(
            action="entry.retracted",
            actor=actor,
            object_type="entry",
            object_id=str(pk),
            data={"from": state, "to": Entry.State.RETRACTED},
        )
        for pk, state in changed
    )


# --- Reviewers' votes and consortium admins' rulings -------------------------------------------


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: the stored decision and the entry as it now stands."""

    decision: Decision
    entry: Entry


def entry_vote(
    *,
    entry_id: int,
    verdict: str,
    reason: str,
    user,
    organisation: Organisation,
    actor: dict,
) -> VoteOutcome:
    """Record a reviewer's vote for ``organisation`` and apply the quorum rule.

    The entry row is locked first (``select_for_update``), so concurrent votes are applied one at
    a time: exactly one of them sees the quorum reached and vets (or rejects) the entry, and the
    others find it no longer pending.
    """
    reason = (reason or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidInput(f"verdict must be one of {Decision.Verdict.values}.")
    if verdict == Decision.Verdict.REJECT and not reason:
        raise InvalidInput("Give a reason for rejecting the entry.", code="reason_required")
    now = timezone.now()
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.state != Entry.State.PENDING:
            raise Conflict(
                f"Only pending entries take votes; this one is {entry.state}.",
                code="not_pending",
                details={"state": entry.state},
            )
        if _has_active_add(entry_id=entry.pk, organisation_id=organisation.pk):
            raise Forbidden(
                "Your organisation contributed this entry; another organisation must vet it.",
                code="self_vote",
            )
        if Decision.objects.filter(
            entry=entry,
            review_round=entry.review_round,
            kind=Decision.Kind.VOTE,
            organisation=organisation,
        ).exists():
            raise _already_voted()
        policy = VettingPolicy.current()
        quorum, snapshot = effective_quorum(entry=entry, policy=policy, now=now)
        try:
            # A savepoint: the conditional unique constraint is the last word on one vote per
            # organisation per round, whatever reached the database first.
            with transaction.atomic():
                decision = Decision.objects.create(
                    entry=entry,
                    review_round=entry.review_round,
                    kind=Decision.Kind.VOTE,
                    verdict=verdict,
                    user=user,
                    organisation=organisation,
                    reason=reason,
                    policy=snapshot,
                    created_at=now,
                )
        except IntegrityError:
            raise _already_voted() from None
        records = [
            AuditRecord(
                action="entry.voted",
                actor=actor,
                organisation=organisation.slug,
                object_type="entry",
                object_id=str(entry.pk),
                data={
                    "decision_id": decision.pk,
                    "verdict": verdict,
                    "reason": reason,
                    "review_round": entry.review_round,
                    "policy": snapshot,
                },
            )
        ]
        counted = _counted_votes(entry)
        approvals, rejections = counted[Decision.Verdict.APPROVE], counted[Decision.Verdict.REJECT]
        new_state = None
        if len(approvals) >= quorum:
            new_state = Entry.State.VETTED
        elif len(rejections) >= quorum:
            new_state = Entry.State.REJECTED
        if new_state is not None:
            _set_state(entry, new_state, now)
            records.append(
                AuditRecord(
                    action=f"entry.{new_state}",
                    actor=actor,
                    organisation=organisation.slug,
                    object_type="entry",
                    object_id=str(entry.pk),
                    data={
                        "from": Entry.State.PENDING,
                        "to": new_state,
                        "policy": snapshot,
                        "approvals": len(approvals),
                        "rejections": len(rejections),
                        "decision_id": decision.pk,
                    },
                )
            )
        audit_record_many(records)
    return VoteOutcome(decision=decision, entry=entry)


def entry_rule(*, entry_id: int, verdict: str, reason: str, user, actor: dict) -> Decision:
    """A consortium admin's ruling on a pending entry: vet or reject it without a quorum."""
    reason = (reason or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidInput(f"verdict must be one of {Decision.Verdict.values}.")
    if not reason:
        raise InvalidInput("Give a reason for the ruling.", code="reason_required")
    now = timezone.now()
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.state != Entry.State.PENDING:
            raise Conflict(
                f"Only pending entries can be ruled on; this one is {entry.state}.",
                code="not_pending",
                details={"state": entry.state},
            )
        new_state = (
            Entry.State.VETTED if verdict == Decision.Verdict.APPROVE else Entry.State.REJECTED
        )
        decision = _admin_decision(
            entry=entry,
            verdict=verdict,
            new_state=new_state,
            rule="admin_ruling",
            action=f"entry.{new_state}",
            user=user,
            reason=reason,
            actor=actor,
            now=now,
        )
    return decision


class DisputeOutcome:
    CONFIRM = "confirm"
    REJECT = "reject"
    values = (CONFIRM, REJECT)


def entry_resolve_dispute(
    *, entry_id: int, outcome: str, reason: str, user, actor: dict
) -> Decision:
    """A consortium admin ends a dispute: ``confirm`` keeps the entry vetted, ``reject`` rejects
    it. Feedback given before the resolution no longer counts towards a new dispute."""
    reason = (reason or "").strip()
    if outcome not in DisputeOutcome.values:
        raise InvalidInput(f"outcome must be one of {list(DisputeOutcome.values)}.")
    if not reason:
        raise InvalidInput("Give a reason for the resolution.", code="reason_required")
    now = timezone.now()
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.state != Entry.State.DISPUTED:
            raise Conflict(
                f"Only disputed entries can be resolved; this one is {entry.state}.",
                code="not_disputed",
                details={"state": entry.state},
            )
        confirmed = outcome == DisputeOutcome.CONFIRM
        new_state = Entry.State.VETTED if confirmed else Entry.State.REJECTED
        entry.dispute_resolved_at = now
        decision = _admin_decision(
            entry=entry,
            verdict=Decision.Verdict.APPROVE if confirmed else Decision.Verdict.REJECT,
            new_state=new_state,
            rule="dispute_resolution",
            action="entry.dispute_resolved",
            user=user,
            reason=reason,
            actor=actor,
            now=now,
            extra_data={"outcome": outcome},
            extra_fields=["dispute_resolved_at"],
        )
    return decision


# --- Feedback and disputes -----------------------------------------------------------------------

_DISSENT = (Feedback.Opinion.DISAGREE, Feedback.Opinion.FALSE_POSITIVE)


def feedback_set(
    *,
    entry_id: int,
    opinion: str,
    note: str,
    user,
    organisation: Organisation,
    actor: dict,
) -> Feedback:
    """Record (or change) ``organisation``'s opinion of a vetted entry. When distinct
    organisations dissenting since the last resolution reach the policy's threshold, the entry
    becomes disputed."""
    if opinion not in Feedback.Opinion.values:
        raise InvalidInput(f"opinion must be one of {Feedback.Opinion.values}.")
    note = (note or "").strip()
    if len(note) > 2000:
        raise InvalidInput("note is limited to 2000 characters.")
    now = timezone.now()
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.state not in (Entry.State.VETTED, Entry.State.DISPUTED):
            raise Conflict(
                f"Feedback is for vetted entries; this one is {entry.state}.",
                code="not_vetted",
                details={"state": entry.state},
            )
        if _has_active_add(entry_id=entry.pk, organisation_id=organisation.pk):
            raise Forbidden(
                "Your organisation contributed this entry; feedback is for other members.",
                code="own_entry",
            )
        feedback = (
            Feedback.objects.select_for_update()
            .filter(entry=entry, organisation=organisation)
            .first()
        )
        previous = feedback.opinion if feedback else None
        if feedback is None:
            feedback = Feedback.objects.create(
                entry=entry,
                organisation=organisation,
                user=user,
                opinion=opinion,
                note=note,
                created_at=now,
                updated_at=now,
            )
        else:
            feedback.opinion, feedback.note, feedback.user, feedback.updated_at = (
                opinion,
                note,
                user,
                now,
            )
            feedback.save(update_fields=["opinion", "note", "user", "updated_at"])
        records = [
            AuditRecord(
                action="feedback.given",
                actor=actor,
                organisation=organisation.slug,
                object_type="entry",
                object_id=str(entry.pk),
                data={"opinion": opinion, "previous": previous, "note": note},
            )
        ]
        policy = VettingPolicy.current()
        dissent = Feedback.objects.filter(entry=entry, opinion__in=_DISSENT)
        if entry.dispute_resolved_at is not None:
            dissent = dissent.filter(updated_at__gt=entry.dispute_resolved_at)
        dissenting = dissent.values("organisation").distinct().count()
        if entry.state == Entry.State.VETTED and dissenting >= policy.dispute_threshold:
            _set_state(entry, Entry.State.DISPUTED, now)
            records.append(
                AuditRecord(
                    action="entry.disputed",
                    actor=actor,
                    organisation=organisation.slug,
                    object_type="entry",
                    object_id=str(entry.pk),
                    data={
                        "from": Entry.State.VETTED,
                        "to": Entry.State.DISPUTED,
                        "dissenting_organisations": dissenting,
                        "policy": policy_snapshot(policy, rule="dispute_threshold"),
                    },
                )
            )
        audit_record_many(records)
    return feedback


# --- Policy, incidents and the label taxonomy ----------------------------------------------------

POLICY_FIELDS = ("quorum", "auto_vet_trusted", "dispute_threshold")


def vetting_policy_update(*, changes: dict[str, Any], actor: dict) -> VettingPolicy:
    """Change the hub's vetting policy. A new quorum applies from the next vote on each entry."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown policy fields: {sorted(unknown)}.")
    for name in ("quorum", "dispute_threshold"):
        if name in changes and (
            isinstance(changes[name], bool)
            or not isinstance(changes[name], int)
            or not 1 <= changes[name] <= 100
        ):
            raise InvalidInput(
                f"{name} must be a whole number from 1 to 100.", details={name: "range"}
            )
    if "auto_vet_trusted" in changes and not isinstance(changes["auto_vet_trusted"], bool):
        raise InvalidInput("auto_vet_trusted must be true or false.")
    with transaction.atomic():
        VettingPolicy.current()
        policy = VettingPolicy.objects.select_for_update().get(pk=1)
        before = policy_snapshot(policy)
        for name, value in changes.items():
            setattr(policy, name, value)
        after = policy_snapshot(policy)
        if after == before:
            return policy
        policy.updated_at = timezone.now()
        policy.save()
        audit_record(
            AuditRecord(
                action="policy.changed",
                actor=actor,
                object_type="vetting_policy",
                object_id="1",
                data={"from": before, "to": after},
            )
        )
    return policy


def incident_declare(
    *,
    name: str,
    description: str = "",
    started_at: datetime | None = None,
    auto_vet: bool = True,
    quorum: int | None = None,
    user=None,
    actor: dict,
) -> Incident:
    """Declare an incident; contributions tagged with it take its policy while it is active."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("An incident needs a name.", details={"name": "required"})
    if quorum is not None and not 1 <= quorum <= 100:
        raise InvalidInput("quorum must be a whole number from 1 to 100, or null.")
    with transaction.atomic():
        incident = Incident.objects.create(
            name=name,
            description=description or "",
            started_at=started_at or timezone.now(),
            auto_vet=auto_vet,
            quorum=quorum,
            declared_by=user,
        )
        audit_record(
            AuditRecord(
                action="incident.declared",
                actor=actor,
                object_type="incident",
                object_id=str(incident.pk),
                data={
                    "name": incident.name,
                    "description": incident.description,
                    "started_at": incident.started_at.isoformat(),
                    "auto_vet": auto_vet,
                    "quorum": quorum,
                },
            )
        )
    return incident


def incident_close(*, incident_id, actor: dict, ended_at: datetime | None = None) -> Incident:
    """Close an incident: from ``ended_at`` (now by default) its policy no longer applies."""
    now = timezone.now()
    ended_at = ended_at or now
    with transaction.atomic():
        incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
        if incident is None:
            raise NotFound("No such incident.")
        if incident.ended_at is not None:
            raise Conflict("This incident is already closed.", code="incident_closed")
        if ended_at < incident.started_at:
            raise InvalidInput("ended_at cannot be before the incident started.")
        incident.ended_at = ended_at
        incident.save(update_fields=["ended_at"])
        audit_record(
            AuditRecord(
                action="incident.closed",
                actor=actor,
                object_type="incident",
                object_id=str(incident.pk),
                data={"name": incident.name, "ended_at": ended_at.isoformat()},
            )
        )
    return incident


def label_save(*, label: Label, actor: dict) -> Label:
    """Create or change a term of the taxonomy. Deactivating a label refuses it in new
    contributions; entries keep the labels they have."""
    if not label.slug or not label.name:
        raise InvalidInput("A label needs a slug and a name.")
    with transaction.atomic():
        before = (
            Label.objects.filter(pk=label.pk)
            .values("slug", "name", "description", "active")
            .first()
            if label.pk
            else None
        )
        label.save()
        after = {
            "slug": label.slug,
            "name": label.name,
            "description": label.description,
            "active": label.active,
        }
        if before == after:
            return label
        if before is not None and before["slug"] != after["slug"]:
            sync_changes_record(
                entry_ids=label.entries.values_list("pk", flat=True), reason="labels"
            )
        audit_record(
            AuditRecord(
                action="label.created" if before is None else "label.changed",
                actor=actor,
                object_type="label",
                object_id=label.slug,
                data={"from": before, "to": after},
            )
        )
    return label


# --- Shared steps --------------------------------------------------------------------------------


def _admin_decision(
    *,
    entry: Entry,
    verdict: str,
    new_state: str,
    rule: str,
    action: str,
    user,
    reason: str,
    actor: dict,
    now: datetime,
    extra_data: dict | None = None,
    extra_fields=(),
) -> Decision:
    """A consortium admin's decision on a locked entry: stored with the policy, the entry moved to
    ``new_state``, and the audit event written, all in the caller's transaction."""
    previous = entry.state
    snapshot = policy_snapshot(VettingPolicy.current(), rule=rule)
    decision = Decision.objects.create(
        entry=entry,
        review_round=entry.review_round,
        kind=Decision.Kind.ADMIN,
        verdict=verdict,
        user=user,
        reason=reason,
        policy=snapshot,
        created_at=now,
    )
    _set_state(entry, new_state, now, extra_fields=extra_fields)
    audit_record(
        AuditRecord(
            action=action,
            actor=actor,
            object_type="entry",
            object_id=str(entry.pk),
            data={
                "from": previous,
                "to": new_state,
                **(extra_data or {}),
                "reason": reason,
                "policy": snapshot,
                "decision_id": decision.pk,
            },
        )
    )
    return decision


def _locked_entry(entry_id: int) -> Entry:
    entry = Entry.objects.select_for_update().filter(pk=entry_id).first()
    if entry is None:
        raise NotFound("No such entry.")
    return entry


def _has_active_add(*, entry_id: int, organisation_id: int) -> bool:
    return Contribution.objects.filter(
        entry_id=entry_id,
        organisation_id=organisation_id,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
    ).exists()


def _already_voted() -> Conflict:
    return Conflict(
        "Your organisation has already voted on this entry in this review round.",
        code="already_voted",
    )


def _counted_votes(entry: Entry) -> dict[str, set[int]]:
    """Distinct organisations per verdict in the entry's round, leaving out organisations that
    now hold an active add on it."""
    approving = set(approving_organisations(entry=entry))
    rejecting = set(
        Decision.objects.filter(
            entry_id=entry.pk,
            review_round=entry.review_round,
            kind=Decision.Kind.VOTE,
            verdict=Decision.Verdict.REJECT,
        )
        .exclude(
            organisation_id__in=Contribution.objects.filter(
                entry_id=entry.pk,
                action=Contribution.Action.ADD,
                status=Contribution.Status.ACTIVE,
            ).values("organisation_id")
        )
        .values_list("organisation_id", flat=True)
    )
    return {Decision.Verdict.APPROVE: approving, Decision.Verdict.REJECT: rejecting}


def _set_state(entry: Entry, state: str, now: datetime, *, extra_fields=()) -> None:
    entry.state = state
    entry.state_changed_at = now
    entry.updated_at = now
    entry.save(update_fields=["state", "state_changed_at", "updated_at", *extra_fields])
    sync_changes_record(entry_ids=[entry.pk], reason=state, now=now)
