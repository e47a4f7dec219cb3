"""The hub's vetting policy applied to entries that just received an add.

An add reopens a rejected or retracted entry for a new review round. A pending entry is vetted at
once when its contributor is a trusted member (and the policy auto-vets them) or when the add is
tagged with an active incident whose policy auto-vets (the fast lane). Each automatic decision is
stored with the policy that made it and audited in the caller's transaction.
"""

import uuid
from datetime import datetime
from typing import Any

from django.db.models import F

from federation.contributions.models import Entry
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
    audit_record_many(records)
