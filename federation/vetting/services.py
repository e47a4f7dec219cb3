"""Services that move entries between vetting states, record feedback and disputes, and change
the hub's vetting policy, incidents (declared here, or mirrored from peers) and label taxonomy.

Each runs in one transaction (or the caller's) and writes its audit events in it. The API and the
Django admin both call these, so a change made either way leaves the same trail (docs/vetting.md).
"""

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from federation import downstream
from federation.contributions.models import SHARED_STATES, Contribution, Entry, Label
from federation.errors import Conflict, Forbidden, InvalidInput, NotFound
from federation.lifecycle import entries_transition
from federation.transparency.actions import Action, Key, ObjectType, PolicyRule
from federation.transparency.audit import AuditRecord, audit_record
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.policy import effective_quorum, policy_snapshot, vote_tally
from members.actors import Actor
from members.models import Organisation

# A reason holds one character that is neither whitespace nor an information separator (U+001C to
# U+001F). Spelt out so that it is the same set in ECMA's and Python's regex dialects, whose \s
# differ (ECMA's holds U+FEFF, Python's U+001C-U+001F and U+0085): the schema's pattern for a
# required reason (``RequiredReasonSerializer``) is this one, so that what it calls a reason the
# service does too.
REASON_TEXT = r"[^\s\x1c-\x1f\u0085\ufeff]"
_REASON_TEXT = re.compile(REASON_TEXT)


def _has_text(reason: str) -> bool:
    return _REASON_TEXT.search(reason) is not None


def entries_mark_retracted_if_unsupported(
    *, entry_ids: set[int], actor: Actor, now: datetime
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
    entries_transition(
        entry_ids=entry_ids - supported,
        to=Entry.State.RETRACTED,
        only_from=[s for s in Entry.State.values if s != Entry.State.RETRACTED],
        actor=actor,
        now=now,
    )


# --- Reviewers' votes and consortium admins' rulings -------------------------------------------


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: the stored decision and the entry as it now stands."""

    decision: Decision
    entry: Entry


def entry_vote(*, entry_id: int, verdict: str, reason: str, actor: Actor) -> VoteOutcome:
    """Record a reviewer's vote for their organisation (``actor.organisation``) and apply the
    quorum rule.

    The entry row is locked first (``select_for_update``), so concurrent votes are applied one at
    a time: exactly one of them sees the quorum reached and vets (or rejects) the entry, and the
    others find it no longer pending.
    """
    organisation = _acting_organisation(actor)
    reason = (reason or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidInput(f"verdict must be one of {Decision.Verdict.values}.")
    if verdict == Decision.Verdict.REJECT and not _has_text(reason):
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
                    user=actor.user,
                    organisation=organisation,
                    reason=reason,
                    policy=snapshot,
                    created_at=now,
                )
        except IntegrityError:
            raise _already_voted() from None
        audit_record(
            AuditRecord(
                action=Action.ENTRY_VOTED,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.ENTRY,
                object_id=str(entry.pk),
                data={
                    Key.DECISION_ID: decision.pk,
                    Key.VERDICT: verdict,
                    Key.REASON: reason,
                    Key.REVIEW_ROUND: entry.review_round,
                    Key.POLICY: snapshot,
                },
            )
        )
        tally = vote_tally(entry_id=entry.pk)
        new_state = None
        if tally.approvals >= quorum:
            new_state = Entry.State.VETTED
        elif tally.rejections >= quorum:
            new_state = Entry.State.REJECTED
        if new_state is not None:
            entries_transition(
                entry_ids=[entry.pk],
                to=new_state,
                actor=actor,
                data={
                    Key.POLICY: snapshot,
                    Key.APPROVALS: tally.approvals,
                    Key.REJECTIONS: tally.rejections,
                    Key.DECISION_ID: decision.pk,
                },
                now=now,
            )
            entry.refresh_from_db()
    return VoteOutcome(decision=decision, entry=entry)


def entry_rule(*, entry_id: int, verdict: str, reason: str, actor: Actor) -> Decision:
    """A consortium admin's ruling on a pending entry: vet or reject it without a quorum."""
    reason = (reason or "").strip()
    if verdict not in Decision.Verdict.values:
        raise InvalidInput(f"verdict must be one of {Decision.Verdict.values}.")
    if not _has_text(reason):
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
            rule=PolicyRule.ADMIN_RULING,
            reason=reason,
            actor=actor,
            now=now,
        )
    return decision


class DisputeOutcome:
    CONFIRM = "confirm"
    REJECT = "reject"
    values = (CONFIRM, REJECT)


def entry_resolve_dispute(*, entry_id: int, outcome: str, reason: str, actor: Actor) -> Decision:
    """A consortium admin ends a dispute: ``confirm`` keeps the entry vetted, ``reject`` rejects
    it. Feedback given before the resolution no longer counts towards a new dispute."""
    reason = (reason or "").strip()
    if outcome not in DisputeOutcome.values:
        raise InvalidInput(f"outcome must be one of {list(DisputeOutcome.values)}.")
    if not _has_text(reason):
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
        decision = _admin_decision(
            entry=entry,
            verdict=Decision.Verdict.APPROVE if confirmed else Decision.Verdict.REJECT,
            new_state=Entry.State.VETTED if confirmed else Entry.State.REJECTED,
            rule=PolicyRule.DISPUTE_RESOLUTION,
            reason=reason,
            actor=actor,
            now=now,
            extra_data={Key.OUTCOME: outcome},
        )
    return decision


# --- Feedback and disputes -----------------------------------------------------------------------

_DISSENT = (Feedback.Opinion.DISAGREE, Feedback.Opinion.FALSE_POSITIVE)


def feedback_set(*, entry_id: int, opinion: str, note: str, actor: Actor) -> Feedback:
    """Record (or change) the opinion of ``actor``'s organisation on a vetted entry. When distinct
    organisations dissenting since the last resolution reach the policy's threshold, the entry
    becomes disputed."""
    organisation = _acting_organisation(actor)
    if opinion not in Feedback.Opinion.values:
        raise InvalidInput(f"opinion must be one of {Feedback.Opinion.values}.")
    note = (note or "").strip()
    if len(note) > 2000:
        raise InvalidInput("note is limited to 2000 characters.")
    now = timezone.now()
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.state not in SHARED_STATES:
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
                user=actor.user,
                opinion=opinion,
                note=note,
                created_at=now,
                updated_at=now,
            )
        else:
            feedback.opinion, feedback.note, feedback.user, feedback.updated_at = (
                opinion,
                note,
                actor.user,
                now,
            )
            feedback.save(update_fields=["opinion", "note", "user", "updated_at"])
        audit_record(
            AuditRecord(
                action=Action.FEEDBACK_GIVEN,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.ENTRY,
                object_id=str(entry.pk),
                data={Key.OPINION: opinion, Key.PREVIOUS: previous, Key.NOTE: note},
            )
        )
        policy = VettingPolicy.current()
        dissent = Feedback.objects.filter(entry=entry, opinion__in=_DISSENT)
        if entry.dispute_resolved_at is not None:
            dissent = dissent.filter(updated_at__gt=entry.dispute_resolved_at)
        dissenting = dissent.values("organisation").distinct().count()
        if entry.state == Entry.State.VETTED and dissenting >= policy.dispute_threshold:
            entries_transition(
                entry_ids=[entry.pk],
                to=Entry.State.DISPUTED,
                actor=actor,
                data={
                    Key.DISSENTING_ORGANISATIONS: dissenting,
                    Key.POLICY: policy_snapshot(policy, rule=PolicyRule.DISPUTE_THRESHOLD),
                },
                now=now,
            )
    return feedback


# --- Policy, incidents and the label taxonomy ----------------------------------------------------

POLICY_FIELDS = ("quorum", "auto_vet_trusted", "dispute_threshold")


def vetting_policy_update(*, changes: dict[str, Any], actor: Actor) -> VettingPolicy:
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
                action=Action.POLICY_CHANGED,
                actor=actor,
                object_type=ObjectType.VETTING_POLICY,
                object_id="1",
                data={Key.FROM: before, Key.TO: after},
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
    actor: Actor,
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
            declared_by=actor.user,
        )
        audit_record(
            AuditRecord(
                action=Action.INCIDENT_DECLARED,
                actor=actor,
                object_type=ObjectType.INCIDENT,
                object_id=str(incident.pk),
                data={
                    Key.NAME: incident.name,
                    Key.DESCRIPTION: incident.description,
                    Key.STARTED_AT: incident.started_at.isoformat(),
                    Key.AUTO_VET: auto_vet,
                    Key.QUORUM: quorum,
                },
            )
        )
    return incident


def incident_close(*, incident_id, actor: Actor, ended_at: datetime | None = None) -> Incident:
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
                action=Action.INCIDENT_CLOSED,
                actor=actor,
                object_type=ObjectType.INCIDENT,
                object_id=str(incident.pk),
                data={Key.NAME: incident.name, Key.ENDED_AT: ended_at.isoformat()},
            )
        )
    return incident


def incidents_mirror(*, origins: Mapping[uuid.UUID, str], actor: Actor, now: datetime) -> None:
    """Incidents named by relayed contributions (``origins``: incident id → the hub that
    declared it) and unknown here: mirrored, never auto-vetting (the hub's own quorum), and
    audited ``incident.declared``, in the caller's transaction."""
    wanted = dict(origins)
    if not wanted:
        return
    known = set(Incident.objects.filter(pk__in=list(wanted)).values_list("pk", flat=True))
    for incident_id, hub in sorted(wanted.items(), key=lambda pair: str(pair[0])):
        if incident_id in known:
            continue
        name = f"Incident {incident_id} of hub {hub}"[:200]
        description = f"Declared at hub {hub}; mirrored here when its contributions arrived."
        incident, created = Incident.objects.get_or_create(
            pk=incident_id,
            defaults={
                "name": name,
                "description": description,
                "started_at": now,
                "auto_vet": False,
            },
        )
        if created:
            audit_record(
                AuditRecord(
                    action=Action.INCIDENT_DECLARED,
                    actor=actor,
                    organisation="",
                    object_type=ObjectType.INCIDENT,
                    object_id=str(incident.pk),
                    data={
                        Key.NAME: name,
                        Key.DESCRIPTION: description,
                        Key.STARTED_AT: now.isoformat(),
                        Key.AUTO_VET: False,
                        Key.QUORUM: None,
                    },
                )
            )


def label_save(*, label: Label, actor: Actor) -> Label:
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
            downstream.entries_relabelled(entry_ids=label.entries.values_list("pk", flat=True))
        audit_record(
            AuditRecord(
                action=Action.LABEL_CREATED if before is None else Action.LABEL_CHANGED,
                actor=actor,
                object_type=ObjectType.LABEL,
                object_id=label.slug,
                data={Key.FROM: before, Key.TO: after},
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
    reason: str,
    actor: Actor,
    now: datetime,
    extra_data: dict | None = None,
) -> Decision:
    """A consortium admin's decision on a locked entry: stored with the policy, and the entry moved
    to ``new_state`` (with its audit event), all in the caller's transaction."""
    snapshot = policy_snapshot(VettingPolicy.current(), rule=rule)
    decision = Decision.objects.create(
        entry=entry,
        review_round=entry.review_round,
        kind=Decision.Kind.ADMIN,
        verdict=verdict,
        user=actor.user,
        reason=reason,
        policy=snapshot,
        created_at=now,
    )
    entries_transition(
        entry_ids=[entry.pk],
        to=new_state,
        actor=actor,
        reason=reason,
        data={**(extra_data or {}), Key.POLICY: snapshot, Key.DECISION_ID: decision.pk},
        now=now,
    )
    entry.refresh_from_db()
    return decision


def _acting_organisation(actor: Actor) -> Organisation:
    if actor.organisation is None:
        raise Forbidden("Only a member organisation's reviewer can do this.")
    return actor.organisation


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
