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
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from federation.contributions.models import Contribution, Entry
from federation.db.bulk_insert import insert_alike
from federation.lifecycle import entries_transition
from federation.transparency.actions import Key, PolicyRule
from federation.vetting.models import Decision, Incident, VettingPolicy
from members.actors import Actor


def policy_snapshot(policy: VettingPolicy, **extra: Any) -> dict[str, Any]:
    """The policy as it stood, recorded with a decision; ``extra`` adds the ``rule`` that applied
    and its details (``incident``, ``member``, ``effective_quorum``: keys named in ``Key``)."""
    return {
        Key.QUORUM: policy.quorum,
        Key.AUTO_VET_TRUSTED: policy.auto_vet_trusted,
        Key.DISPUTE_THRESHOLD: policy.dispute_threshold,
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
            rule=PolicyRule.INCIDENT_QUORUM,
            incident=str(incident.pk),
            effective_quorum=incident.quorum,
        )
    return policy.quorum, policy_snapshot(
        policy, rule=PolicyRule.QUORUM, effective_quorum=policy.quorum
    )


# --- Counting votes: the quorum rule and the admin's tally use this, and only this ---------------


class VoteTally(NamedTuple):
    approvals: int
    rejections: int


def _counted_votes(verdict: str) -> Coalesce:
    """Distinct organisations that voted ``verdict`` in the entry's current round and hold no
    active add on it now (a reviewer cannot vet its own organisation's contribution, even one
    added after the vote). An expression over an outer ``Entry`` row."""
    own_add = Contribution.objects.filter(
        entry_id=OuterRef("entry_id"),
        organisation_id=OuterRef("organisation_id"),
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
    )
    votes = (
        Decision.objects.filter(
            entry_id=OuterRef("pk"),
            review_round=OuterRef("review_round"),
            kind=Decision.Kind.VOTE,
            verdict=verdict,
        )
        .exclude(Exists(own_add))
        .order_by()
        .values("entry_id")
        .annotate(n=Count("organisation_id", distinct=True))
        .values("n")
    )
    return Coalesce(Subquery(votes, output_field=IntegerField()), 0)


def with_vote_tally(queryset: QuerySet[Entry]) -> QuerySet[Entry]:
    """Annotate entries with ``counted_approvals`` and ``counted_rejections``, as the quorum rule
    counts them (one query for a whole admin page)."""
    return queryset.annotate(
        counted_approvals=_counted_votes(Decision.Verdict.APPROVE),
        counted_rejections=_counted_votes(Decision.Verdict.REJECT),
    )


def vote_tally(*, entry_id: int) -> VoteTally:
    """The votes that count towards the quorum of one entry in its current round."""
    approvals, rejections = (
        with_vote_tally(Entry.objects.filter(pk=entry_id))
        .values_list("counted_approvals", "counted_rejections")
        .get()
    )
    return VoteTally(approvals=approvals, rejections=rejections)


# --- The policy applied to entries that just received adds ---------------------------------------


_REOPENABLE = (Entry.State.REJECTED, Entry.State.RETRACTED)


def vetting_every_add(organisation) -> VettingPolicy | None:
    """The current policy if it vets every add of ``organisation`` whatever its incident (a
    trusted member, and the policy auto-vets them), else None: the ingest then inserts the
    member's new entries vetted (``apply_policy_to_entries``'s ``inserted``)."""
    if not organisation.trusted:
        return None  # (no query: the policy is read once, by ``apply_policy_to_entries``)
    policy = VettingPolicy.current()
    return policy if policy.auto_vet_trusted else None


def apply_policy_to_entries(
    *,
    entry_incidents: dict[int, uuid.UUID | None],
    actor: Actor,
    now: datetime,
    states: Mapping[int, str] | None = None,
    policy: VettingPolicy | None = None,
    inserted: Mapping[int, int] | None = None,
) -> None:
    """Reopen and auto-vet the entries that just received adds from ``actor.organisation``.

    ``states``: the entries' states as the caller read them under the row locks it still holds
    (the ingest's upsert), if it did: then only rejected and retracted ones are offered to the
    reopening move, and neither move locks and reads the entries again (``locked_states``): a
    trusted member's bulk ingest vets its entries with one UPDATE.

    ``inserted`` (id: review round), with ``states`` giving them as pending and ``policy`` the
    one ``vetting_every_add`` returned for this member: entries the caller has just inserted
    already vetted; they are vetted as the others are (events, decisions, downstream), without
    the UPDATE (``entries_transition``)."""
    if not entry_incidents:
        return
    organisation = actor.organisation
    assert organisation is not None, "only members add"
    reopened = entries_transition(
        entry_ids=entry_incidents
        if states is None
        else [pk for pk in entry_incidents if states[pk] in _REOPENABLE],
        to=Entry.State.PENDING,
        only_from=_REOPENABLE,
        actor=actor,
        reason="new add",
        locked_states=states,
        now=now,
    )
    if states is not None:
        states = {**states, **{t.entry_id: t.to_state for t in reopened}}

    incident_ids = {i for i in entry_incidents.values() if i}
    if policy is None and (organisation.trusted or incident_ids):
        policy = VettingPolicy.current()
    # (Otherwise no rule below can apply, and the policy is not read: an untrusted member's
    # bulk ingest without incidents reads it in none of its chunks.)
    incidents = {incident.pk: incident for incident in Incident.objects.filter(pk__in=incident_ids)}
    # The rule that vets each entry: an auto-vetting incident's (by its id) or the trusted
    # member's (None), its snapshot made once. The entries one rule vets share their events' data
    # and their decisions' policy, each written once for all (``audit_record_for_ids``,
    # ``insert_alike``): a trusted member's bulk ingest vets every entry it adds by one rule.
    snapshots: dict[uuid.UUID | None, dict[str, Any]] = {}
    auto: dict[int, uuid.UUID | None] = {}
    for entry_id, incident_id in entry_incidents.items():
        incident = incidents.get(incident_id) if incident_id else None
        if incident is not None and incident.auto_vet and incident.is_active_at(now):
            rule = incident.pk
            if rule not in snapshots:
                snapshots[rule] = policy_snapshot(
                    policy, rule=PolicyRule.INCIDENT, incident=str(incident.pk)
                )
        elif organisation.trusted and policy.auto_vet_trusted:
            rule = None
            if rule not in snapshots:
                snapshots[rule] = policy_snapshot(
                    policy, rule=PolicyRule.TRUSTED_MEMBER, member=organisation.slug
                )
        else:
            continue
        auto[entry_id] = rule
    if auto:
        event_data = {rule: {Key.POLICY: snapshot} for rule, snapshot in snapshots.items()}
        vetted = entries_transition(
            entry_ids=auto,
            to=Entry.State.VETTED,
            only_from=[Entry.State.PENDING],
            actor=actor,
            data_by_entry={pk: event_data[rule] for pk, rule in auto.items()},
            # Under the caller's row locks (a bulk ingest): one UPDATE, no lock-and-read.
            locked_states=states,
            inserted=inserted,
            now=now,
        )
        by_rule: dict[uuid.UUID | None, list] = defaultdict(list)
        for t in vetted:
            by_rule[auto[t.entry_id]].append(t)
        for rule, moves in by_rule.items():
            insert_alike(
                Decision,
                each={
                    "entry_id": [t.entry_id for t in moves],
                    "review_round": [t.review_round for t in moves],
                },
                same={
                    "kind": Decision.Kind.POLICY,
                    "verdict": Decision.Verdict.APPROVE,
                    "user_id": None,
                    "organisation_id": None,
                    "reason": f"automatic: {snapshots[rule][Key.RULE]}",
                    "policy": snapshots[rule],
                    "created_at": now,
                },
            )
    _complete_incident_quorums(
        entry_ids=[
            pk for pk, incident_id in entry_incidents.items() if pk not in auto and incident_id
        ],
        policy=policy,
        actor=actor,
        now=now,
    )


def _complete_incident_quorums(
    *, entry_ids: list[int], policy: VettingPolicy | None, actor: Actor, now: datetime
) -> None:
    """Vet pending entries whose votes already reach a quorum lowered by an incident just tagged
    on them. Only entries tagged with an incident are looked at, so bulk ingest pays nothing."""
    if not entry_ids:
        return
    assert policy is not None, "read whenever an entry names an incident"
    tagged = Contribution.objects.filter(
        entry_id__in=entry_ids,
        action=Contribution.Action.ADD,
        status=Contribution.Status.ACTIVE,
        incident__auto_vet=False,
        incident__quorum__isnull=False,
    ).values_list("entry_id", flat=True)
    complete: dict[int, tuple[dict[str, Any], int]] = {}
    for entry in with_vote_tally(
        Entry.objects.select_for_update()
        .filter(pk__in=sorted(set(tagged)), state=Entry.State.PENDING)
        .order_by("pk")
    ):
        quorum, snapshot = effective_quorum(entry=entry, policy=policy, now=now)
        if snapshot[Key.RULE] == PolicyRule.INCIDENT_QUORUM and entry.counted_approvals >= quorum:
            complete[entry.pk] = (snapshot, entry.counted_approvals)
    if not complete:
        return
    vetted = entries_transition(
        entry_ids=complete,
        to=Entry.State.VETTED,
        only_from=[Entry.State.PENDING],
        actor=actor,
        data_by_entry={
            pk: {Key.POLICY: snapshot, Key.APPROVALS: approvals}
            for pk, (snapshot, approvals) in complete.items()
        },
        now=now,
    )
    # The votes were cast before the incident lowered the quorum: this decision records the
    # policy that completed them, like every other automatic decision.
    Decision.objects.bulk_create(
        Decision(
            entry_id=t.entry_id,
            review_round=t.review_round,
            kind=Decision.Kind.POLICY,
            verdict=Decision.Verdict.APPROVE,
            reason=(f"automatic: incident quorum reached with {complete[t.entry_id][1]} approvals"),
            policy=complete[t.entry_id][0],
            created_at=now,
        )
        for t in vetted
    )
