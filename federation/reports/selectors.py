"""Read-only queries behind the auditor reports.

Every count is computed by PostgreSQL (``annotate``/``aggregate`` with ``Count``), never by
looping over rows in Python, and every list is either bounded by the caller (pagination) or read
with ``iterator()`` for streaming CSV. The same ``ReportFilters`` narrow every report, so an
overview, its CSV and the printable report always agree.

What each filter means for each kind of record (docs/reports.md):

- contributions: received in the period, by the member, carrying the label, of the signal type;
- vetting decisions: made in the period, by the member's reviewers, on an entry that carries the
  label and is of the signal type;
- feedback: last changed in the period, given by the member, on such an entry;
- audit events: occurred in the period, naming the member (label and type do not apply).
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any

from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek

from federation.contributions.models import Contribution, Entry, Label, SignalType
from federation.propagation.models import OutboxItem, PulledItem, Receipt
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.models import AuditEvent, Checkpoint
from federation.vetting.models import Decision, Feedback, Incident
from members.models import Peer

GRANULARITIES = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
# Past this many buckets the period chart is drawn as it comes, without empty buckets filled in.
MAX_FILLED_BUCKETS = 400


@dataclass(frozen=True)
class ReportFilters:
    """The narrowing every report accepts. ``end`` is exclusive; all times are UTC."""

    start: datetime | None = None
    end: datetime | None = None
    member: str | None = None
    label: str | None = None
    signal_type: str | None = None
    granularity: str = "day"

    def as_query(self) -> dict[str, str]:
        """The filters as GET parameters (for links such as the CSV exports)."""
        query: dict[str, str] = {"granularity": self.granularity}
        if self.start is not None:
            query["from"] = self.start.date().isoformat()
        if self.end is not None:
            query["to"] = (self.end - timedelta(days=1)).date().isoformat()
        for name in ("member", "label", "signal_type"):
            value = getattr(self, name)
            if value:
                query[name] = value
        return query


def _period(queryset: QuerySet, field: str, filters: ReportFilters) -> QuerySet:
    if filters.start is not None:
        queryset = queryset.filter(**{f"{field}__gte": filters.start})
    if filters.end is not None:
        queryset = queryset.filter(**{f"{field}__lt": filters.end})
    return queryset


def _entry_narrowing(queryset: QuerySet, prefix: str, filters: ReportFilters) -> QuerySet:
    if filters.signal_type:
        queryset = queryset.filter(**{f"{prefix}signal_type": filters.signal_type})
    if filters.label:
        queryset = queryset.filter(**{f"{prefix}labels__slug": filters.label})
    return queryset


def contributions_filtered(*, filters: ReportFilters) -> QuerySet[Contribution]:
    queryset = _period(Contribution.objects.all(), "received_at", filters)
    if filters.member:
        queryset = queryset.filter(organisation__slug=filters.member)
    if filters.signal_type:
        queryset = queryset.filter(entry__signal_type=filters.signal_type)
    if filters.label:
        # The labels the member signed with (a retract carries none, so it never matches a label).
        queryset = queryset.filter(labels__has_label=filters.label)
    return queryset


def decisions_filtered(*, filters: ReportFilters) -> QuerySet[Decision]:
    queryset = _period(Decision.objects.all(), "created_at", filters)
    if filters.member:
        queryset = queryset.filter(organisation__slug=filters.member)
    return _entry_narrowing(queryset, "entry__", filters)


def feedback_filtered(*, filters: ReportFilters) -> QuerySet[Feedback]:
    queryset = _period(Feedback.objects.all(), "updated_at", filters)
    if filters.member:
        queryset = queryset.filter(organisation__slug=filters.member)
    return _entry_narrowing(queryset, "entry__", filters)


def audit_events_filtered(*, filters: ReportFilters) -> QuerySet[AuditEvent]:
    queryset = _period(AuditEvent.objects.all(), "occurred_at", filters)
    if filters.member:
        queryset = queryset.filter(organisation=filters.member)
    return queryset


_ADDS = Count("pk", filter=Q(action=Contribution.Action.ADD))
_RETRACTS = Count("pk", filter=Q(action=Contribution.Action.RETRACT))


def counts_by_period(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """Contributions per day, week or month: ``{"period": date, "add", "retract", "total"}``,
    with empty periods between the first and the last filled in as zeros."""
    trunc = GRANULARITIES[filters.granularity]
    rows = (
        contributions_filtered(filters=filters)
        .annotate(period=trunc("received_at", tzinfo=UTC))
        .values("period")
        .annotate(add=_ADDS, retract=_RETRACTS, total=Count("pk"))
        .order_by("period")
    )
    counted = {
        row["period"].date(): {
            "period": row["period"].date(),
            "add": row["add"],
            "retract": row["retract"],
            "total": row["total"],
        }
        for row in rows
    }
    if not counted:
        return []
    buckets = _buckets(min(counted), max(counted), filters.granularity)
    if buckets is None:
        return [counted[key] for key in sorted(counted)]
    return [
        counted.get(bucket, {"period": bucket, "add": 0, "retract": 0, "total": 0})
        for bucket in buckets
    ]


def _buckets(first: date, last: date, granularity: str) -> list[date] | None:
    buckets: list[date] = []
    current = first
    while current <= last:
        buckets.append(current)
        if len(buckets) > MAX_FILLED_BUCKETS:
            return None
        if granularity == "day":
            current += timedelta(days=1)
        elif granularity == "week":
            current += timedelta(weeks=1)
        else:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return buckets


def counts_by_member(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """Per member: contributions, adds, retracts and distinct entries, most active first."""
    return list(
        contributions_filtered(filters=filters)
        .values(member=F("organisation__slug"))
        .annotate(
            total=Count("pk"),
            add=_ADDS,
            retract=_RETRACTS,
            entries=Count("entry", distinct=True),
        )
        .order_by("-total", "member")
    )


def counts_by_label(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """Per label: how many contributions were signed with it, most used first.

    One query: a filtered ``COUNT`` per label of the taxonomy (labels live in a JSON list on each
    contribution, so a ``GROUP BY`` would need a set-returning function the ORM cannot group by).
    """
    slugs = list(Label.objects.order_by("slug").values_list("slug", flat=True))
    if not slugs:
        return []
    counts = contributions_filtered(filters=filters).aggregate(
        **{
            f"label_{index}": Count("pk", filter=Q(labels__has_label=slug))
            for index, slug in enumerate(slugs)
        }
    )
    rows = [
        {"label": slug, "total": counts[f"label_{index}"]}
        for index, slug in enumerate(slugs)
        if counts[f"label_{index}"]
    ]
    return sorted(rows, key=lambda row: (-row["total"], row["label"]))


def counts_by_signal_type(*, filters: ReportFilters) -> list[dict[str, Any]]:
    return list(
        contributions_filtered(filters=filters)
        .values(signal_type=F("entry__signal_type"))
        .annotate(total=Count("pk"), add=_ADDS, retract=_RETRACTS)
        .order_by("-total", "signal_type")
    )


def counts_by_action(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """What members and reviewers did: contribution actions, then vetting decisions by kind and
    verdict. Rows are ``{"source", "action", "total"}``."""
    rows: list[dict[str, Any]] = [
        {"source": "contribution", "action": row["action"], "total": row["total"]}
        for row in contributions_filtered(filters=filters)
        .values("action")
        .annotate(total=Count("pk"))
        .order_by("action")
    ]
    rows += [
        {
            "source": "decision",
            "action": f"{row['kind']} {row['verdict']}",
            "total": row["total"],
        }
        for row in decisions_filtered(filters=filters)
        .values("kind", "verdict")
        .annotate(total=Count("pk"))
        .order_by("kind", "verdict")
    ]
    return rows


def audit_counts_by_action(*, filters: ReportFilters) -> list[dict[str, Any]]:
    return list(
        audit_events_filtered(filters=filters)
        .values("action")
        .annotate(total=Count("pk"))
        .order_by("-total", "action")
    )


def feedback_counts_by_opinion(*, filters: ReportFilters) -> list[dict[str, Any]]:
    return list(
        feedback_filtered(filters=filters)
        .values("opinion")
        .annotate(total=Count("pk"))
        .order_by("opinion")
    )


def state_changes_by_state(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """Entries moved into each state in the period, from the audit log's ``data.to``."""
    return list(
        audit_events_filtered(filters=filters)
        .filter(object_type=ObjectType.ENTRY, data__has_key=Key.TO)
        .values(state=F(f"data__{Key.TO}"))
        .annotate(total=Count("pk"))
        .order_by("state")
    )


def overview_totals(*, filters: ReportFilters) -> dict[str, int]:
    totals = contributions_filtered(filters=filters).aggregate(
        contributions=Count("pk"),
        adds=_ADDS,
        retracts=_RETRACTS,
        entries=Count("entry", distinct=True),
        members=Count("organisation", distinct=True),
    )
    totals["decisions"] = decisions_filtered(filters=filters).count()
    totals["feedback"] = feedback_filtered(filters=filters).count()
    totals["audit_events"] = audit_events_filtered(filters=filters).count()
    return totals


_WAYS = ("sent", "pulled", "received")
_FIGURES = ("items", "entries", "retractions")


def _figures(items: QuerySet, peer: str, entry: str) -> QuerySet:
    """Per ``peer`` value: the items, their distinct entries, and the retractions among them."""
    return (
        items.values(peer)
        .annotate(
            items=Count("pk"),
            entries=Count(entry, distinct=True),
            retractions=Count("pk", filter=Q(contribution__action=Contribution.Action.RETRACT)),
        )
        .order_by()
    )


def federation_by_peer(*, filters: ReportFilters) -> list[dict[str, Any]]:
    """Per peer, in the period: items delivered to it by push (entries and retractions among
    them), items it pulled from this hub's feed (``PulledItem``, by its first pull: a page that
    offers an item again adds none; entries and retractions), items received from it (by push
    or pull; entries and retractions), and items dead-lettered for it (from the
    ``federation.dead_lettered`` events). Member, label and type filters do not apply."""
    rows: dict[str, dict[str, Any]] = {}

    def row(peer: str) -> dict[str, Any]:
        return rows.setdefault(
            peer,
            {"peer": peer}
            | {f"{way}_{what}": 0 for way in _WAYS for what in _FIGURES}
            | {"dead_lettered": 0},
        )

    def count(way: str, counted: Iterable[dict[str, Any]], peer_of: Callable) -> None:
        for figures in counted:
            row(peer_of(figures)).update({f"{way}_{what}": figures[what] for what in _FIGURES})

    sent = _period(
        OutboxItem.objects.filter(state=OutboxItem.State.DELIVERED), "delivered_at", filters
    )
    count("sent", _figures(sent, "peer__hub_id", "entry"), itemgetter("peer__hub_id"))
    # Grouped by the peer's id, its hub id read after: joined to the peers, a table without
    # statistics is read peer by peer, through each peer's every pull (docs/reports.md).
    pulled = list(
        _figures(_period(PulledItem.objects.all(), "pulled_at", filters), "peer_id", "entry")
    )
    hubs = dict(
        Peer.objects.filter(pk__in=[c["peer_id"] for c in pulled]).values_list("pk", "hub_id")
    )
    count("pulled", pulled, lambda figures: hubs[figures["peer_id"]])
    received = _period(Receipt.objects.all(), "received_at", filters)
    count(
        "received",
        _figures(received, "peer_hub", "contribution__entry"),
        itemgetter("peer_hub"),
    )
    dead = _period(
        AuditEvent.objects.filter(action=Action.FEDERATION_DEAD_LETTERED), "occurred_at", filters
    ).values_list("object_id", "data")
    for peer, data in dead.iterator(chunk_size=500):
        row(peer)["dead_lettered"] += len((data or {}).get(Key.ITEMS) or ())
    return [rows[peer] for peer in sorted(rows)]


def incidents_in_period(*, filters: ReportFilters) -> QuerySet[Incident]:
    return _period(Incident.objects.all(), "started_at", filters).order_by("started_at")


def entries_in_state(*, state: str) -> int:
    return Entry.objects.filter(state=state).count()


def latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-tree_size").first()


# --- who shared what -------------------------------------------------------------------------


def contributions_search(*, value: str | None, member: str | None) -> QuerySet[Contribution]:
    """Contributions whose signal value is ``value`` (any type) and/or whose member is ``member``,
    newest first. Values are compared in their normalised (lowercase) form."""
    queryset = Contribution.objects.select_related("organisation", "entry")
    if value:
        # Every type named, so that the entries' (signal_type, value) index serves the value.
        queryset = queryset.filter(
            entry__signal_type__in=SignalType.values, entry__value=value.strip().lower()
        )
    if member:
        queryset = queryset.filter(organisation__slug=member)
    return queryset.order_by("-received_at", "-pk")


def entry_for_history(*, entry_id: int) -> Entry:
    """The entry with its labels, contributions (with keys), decisions and feedback, in five
    queries whatever their number."""
    return Entry.objects.prefetch_related(
        "labels",
        Prefetch(
            "contributions",
            queryset=Contribution.objects.select_related("organisation", "signing_key").order_by(
                "received_at", "pk"
            ),
        ),
        Prefetch(
            "decisions",
            queryset=Decision.objects.select_related("organisation", "user").order_by("pk"),
        ),
        Prefetch(
            "feedback",
            queryset=Feedback.objects.select_related("organisation", "user").order_by("pk"),
        ),
    ).get(pk=entry_id)


def audit_events_for_entry(*, entry: Entry, contribution_uuids: list[str]) -> QuerySet[AuditEvent]:
    """The log's events about this entry and its contributions, in leaf order (the log's own:
    a retraction of the entry after the retract that caused it), those not yet sequenced last."""
    about = Q(object_type=ObjectType.ENTRY, object_id=str(entry.pk)) | Q(
        object_type=ObjectType.CONTRIBUTION, object_id__in=contribution_uuids
    )
    return AuditEvent.objects.filter(about).order_by(F("leaf_index").asc(nulls_last=True), "pk")


def iterate(queryset: QuerySet, *fields: str) -> Iterator[tuple]:
    """Stream ``fields`` of a large queryset without loading it whole."""
    return queryset.values_list(*fields).iterator(chunk_size=2000)
