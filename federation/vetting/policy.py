"""The hub's vetting policy applied to entries that just received an add.

An add reopens a rejected or retracted entry for a new review round. A pending entry is vetted at
once when its contributor is a trusted member (and the policy auto-vets them) or when the add is
tagged with an active incident whose policy auto-vets (the fast lane). Each automatic decision is
stored with the policy that made it and audited in the caller's transaction.

The quorum that reviewers' votes must reach is the hub's, unless an active add on the entry is
tagged with an active incident that does not auto-vet but sets its own quorum (``effective_quorum``);
an add so tagged may complete a quorum that earlier votes already reached under that override.
"""

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Exists, F, OuterRef

from federation.contributions.models import Contribution, Entry
from federation.sync.changes import sync_changes_record
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.vetting.models import Decision, Incident, VettingPolicy
from members.models import Organisation


def policy_snapshot(policy: VettingPolicy, **extra: Any) -> dict[str, Any]:
    return {
        "quorum": policy.quorum,
        "auto_vet_trusted": policy.auto_vet_trusted,
        "dispute_threshold": policy.dispute_threshold,
        **extra,
    }


def effective_quorum(
    *, entry: Entry, policy: VettingPolicy, now: datetime
) -> tuple[int, dict[str, Any]]:
    """The approvals ``entry`` needs in its current round, and the policy snapshot to record.

    An incident that does not auto-vet may override the hub's quorum while it is active; when
    several such incidents tag the entry's active adds, the smallest quorum (the fastest lane)
    applies.
    """
    overrides = [
        incident
        for incident in Incident.objects.filter(
            auto_vet=False,
            quorum__isnull=False,
            contributions__entry=entry,
            contributions__action=Contribution.Action.ADD,
            contributions__status=Contribution.Status.ACTIVE,
        ).distinct()
        if incident.is_active_at(now)
    ]
    if overrides:
        incident = min(overrides, key=lambda i: (i.quorum, str(i.pk)))
        return incident.quorum, policy_snapshot(
            policy,
            rule="incident_quorum",
            incident=str(incident.pk),
            effective_quorum=incident.quorum,
        )
    return policy.quorum, policy_snapshot(policy, rule="quorum", effective_quorum=policy.quorum)


def approving_organisations(*, entry: Entry) -> list[int]:
    """Organisations whose approval counts in the entry's current round: those that voted to
    approve and have no active add on the entry (a reviewer cannot vet its own organisation's
    contribution, even one added after the vote)."""
    own_add = Contribution.objects.filter(
        entry_id=entry.pk,
        organisation_id=OuterRef("organisation_id"),
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
    )
    return list(
        Decision.objects.filter(
            entry_id=entry.pk,
            review_round=entry.review_round,
            kind=Decision.Kind.VOTE,
            verdict=Decision.Verdict.APPROVE,
        )
        .exclude(Exists(own_add))
        .values_list("organisation_id", flat=True)
        .distinct()
    )


def apply_policy_to_entries(
    *,
    entry_incidents: dict[int, uuid.UUID | None],
    organisation: Organisation,
    actor: dict,
    now: datetime,
) -> None:
    """Reopen and auto-vet the entries that just received adds from ``organisation``."""
    if not entry_incidents:
        return
    ids = sorted(entry_incidents)
    reopen = list(
        Entry.objects.filter(
            pk__in=ids, state__in=[Entry.State.REJECTED, Entry.State.RETRACTED]
        ).values_list("pk", "state")
    )
    records: list[AuditRecord] = []
    if reopen:
        Entry.objects.filter(pk__in=[pk for pk, _ in reopen]).update(
            state=Entry.State.PENDING, review_round=F("review_round") + 1, state_changed_at=now
        )
        records += [
            AuditRecord(
                action="entry.reopened",
                actor=actor,
                organisation=organisation.slug,
                object_type="entry",
                object_id=str(pk),
                data={"from": state, "to": Entry.State.PENDING, "reason": "new add"},
            )
            for pk, state in reopen
        ]

    policy = VettingPolicy.current()
    incidents = {
        incident.pk: incident
        for incident in Incident.objects.filter(pk__in={i for i in entry_incidents.values() if i})
    }
    auto: dict[int, dict[str, Any]] = {}
    for entry_id, incident_id in entry_incidents.items():
        incident = incidents.get(incident_id) if incident_id else None
        if incident is not None and incident.auto_vet and incident.is_active_at(now):
            auto[entry_id] = policy_snapshot(policy, rule="incident", incident=str(incident.pk))
        elif organisation.trusted and policy.auto_vet_trusted:
            auto[entry_id] = policy_snapshot(
                policy, rule="trusted_member", member=organisation.slug
            )
    if auto:
        pending = list(
            Entry.objects.filter(pk__in=sorted(auto), state=Entry.State.PENDING).values_list(
                "pk", "review_round"
            )
        )
        Entry.objects.filter(pk__in=[pk for pk, _ in pending]).update(
            state=Entry.State.VETTED, state_changed_at=now
        )
        sync_changes_record(entry_ids=[pk for pk, _ in pending], reason="vetted", now=now)
        Decision.objects.bulk_create(
            [
                Decision(
                    entry_id=pk,
                    review_round=review_round,
                    kind=Decision.Kind.POLICY,
                    verdict=Decision.Verdict.APPROVE,
                    organisation=None,
                    reason=f"automatic: {auto[pk]['rule']}",
                    policy=auto[pk],
                    created_at=now,
                )
                for pk, review_round in pending
            ],
            batch_size=2000,
        )
        records += [
            AuditRecord(
                action="entry.vetted",
                actor=actor,
                organisation=organisation.slug,
                object_type="entry",
                object_id=str(pk),
                data={"from": Entry.State.PENDING, "to": Entry.State.VETTED, "policy": auto[pk]},
            )
            for pk, _ in pending
        ]
    records += _complete_incident_quorums(
        entry_ids=[
            pk for pk, incident_id in entry_incidents.items() if pk not in auto and incident_id
        ],
        policy=policy,
        organisation=organisation,
        actor=actor,
        now=now,
    )
    audit_record_many(records)


def _complete_incident_quorums(
    *,
    entry_ids: list[int],
    policy: VettingPolicy,
    organisation: Organisation,
    actor: dict,
    now: datetime,
) -> list[AuditRecord]:
    """Vet pending entries whose votes already reach a quorum lowered by an incident just tagged
    on them. Only entries tagged with an incident are looked at, so bulk ingest pays nothing."""
    if not entry_ids:
        return []
    records: list[AuditRecord] = []
    tagged = Contribution.objects.filter(
        entry_id__in=entry_ids,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
        incident__auto_vet=False,
        incident__quorum__isnull=False,
    ).values_list("entry_id", flat=True)
    for entry in (
        Entry.objects.select_for_update()
        .filter(pk__in=sorted(set(tagged)), state=Entry.State.PENDING)
        .order_by("pk")
    ):
        quorum, snapshot = effective_quorum(entry=entry, policy=policy, now=now)
        approvals = approving_organisations(entry=entry)
        if snapshot["rule"] != "incident_quorum" or len(approvals) < quorum:
            continue
        Entry.objects.filter(pk=entry.pk).update(
            state=Entry.State.VETTED, state_changed_at=now, updated_at=now
        )
        sync_changes_record(entry_ids=[entry.pk], reason="vetted", now=now)
        # The votes were cast before the incident lowered the quorum: this decision records the
        # policy that completed them, like every other automatic decision.
        Decision.objects.create(
            entry_id=entry.pk,
            review_round=entry.review_round,
            kind=Decision.Kind.POLICY,
            verdict=Decision.Verdict.APPROVE,
            reason=f"automatic: incident quorum reached with {len(approvals)} approvals",
            policy=snapshot,
            created_at=now,
        )
        records.append(
            AuditRecord(
                action="entry.vetted",
                actor=actor,
                organisation=organisation.slug,
                object_type="entry",
                object_id=str(entry.pk),
                data={
                    "from": Entry.State.PENDING,
                    "to": Entry.State.VETTED,
                    "policy": snapshot,
                    "approvals": len(approvals),
                },
            )
        )
    return records
