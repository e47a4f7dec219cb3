"""Whether a report page's contribution figures agree with the log's at the latest checkpoint
(docs/reports.md, "Do the figures agree with the log?").

The report tables count contribution rows, whose columns an insider with the database could
edit (labels, the entry's signal type, the dates); the log's ``contribution.accepted`` events
are committed to by the signed checkpoints. For the contributions a page counts that this hub
accepted itself, and whose event lies under the latest checkpoint, both are counted — in total,
by action, member, signal type and label — and every figure that differs is named. A
contribution relayed by a peer is in its own hub's log, not here; one accepted after the latest
checkpoint is compared once a checkpoint covers it.
"""

from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.fields.json import KT, KeyTransform

from federation.contributions.models import Label
from federation.db.lookups import HasLabel
from federation.reports.selectors import (
    ReportFilters,
    audit_events_filtered,
    contributions_filtered,
    latest_checkpoint,
)
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent

# Accepted events not yet under a checkpoint are left out of the comparison by uuid; past this
# many (the sequencer stalled), the page says so instead of comparing.
MAX_PENDING = 10_000

FIGURES = ("contributions", "by action", "by member", "by signal type", "by label")


@dataclass(frozen=True)
class Difference:
    figure: str  # one of FIGURES
    item: str
    tables: int
    log: int


@dataclass(frozen=True)
class LogAgreement:
    """``state``: ``agree``, ``differ``, ``no_checkpoint`` or ``too_many_pending``."""

    state: str
    tree_size: int | None = None
    compared: int = 0  # this hub's contributions counted from the log
    from_peers: int = 0  # contributions on the page relayed by peers (in their hubs' logs)
    pending: int = 0  # accepted since the checkpoint: compared once one covers them
    differences: list[Difference] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.state == "agree"


def _tally(rows, labels: dict[str, int]) -> Counter:
    """Figures from rows of ``(member, action, signal type, count)`` and counts per label."""
    figures: Counter = Counter()
    for member, action, signal_type, count in rows:
        figures[("contributions", "all")] += count
        figures[("by action", str(action))] += count
        figures[("by member", str(member))] += count
        figures[("by signal type", str(signal_type))] += count
    for label, count in labels.items():
        if count:
            figures[("by label", label)] += count
    return figures


def log_agreement(*, filters: ReportFilters) -> LogAgreement:
    """Compare the page's contribution figures with the log's at the latest checkpoint."""
    checkpoint = latest_checkpoint()
    if checkpoint is None:
        return LogAgreement(state="no_checkpoint")
    size = checkpoint.tree_size
    accepted = AuditEvent.objects.filter(action=Action.CONTRIBUTION_ACCEPTED)
    pending = list(
        accepted.filter(Q(leaf_index__isnull=True) | Q(leaf_index__gte=size)).values_list(
            "object_id", flat=True
        )[: MAX_PENDING + 1]
    )
    if len(pending) > MAX_PENDING:
        return LogAgreement(state="too_many_pending", tree_size=size, pending=len(pending))
    slugs = list(Label.objects.order_by("slug").values_list("slug", flat=True))

    rows = contributions_filtered(filters=filters)
    from_peers = rows.exclude(origin_hub=settings.HUB_ID).count()
    rows = rows.filter(origin_hub=settings.HUB_ID).exclude(uuid__in=pending)
    table_rows = (
        rows.values_list("organisation__slug", "action", "entry__signal_type")
        .annotate(n=Count("pk"))
        .order_by()
    )
    table_labels = (
        rows.aggregate(
            **{
                f"l{i}": Count("pk", filter=Q(labels__has_label=slug))
                for i, slug in enumerate(slugs)
            }
        )
        if slugs
        else {}
    )
    tables = _tally(table_rows, {slug: table_labels[f"l{i}"] for i, slug in enumerate(slugs)})

    # In the period (occurred_at, equal to the row's received_at) and naming the member.
    events = audit_events_filtered(filters=filters).filter(
        action=Action.CONTRIBUTION_ACCEPTED, leaf_index__lt=size
    )
    if filters.signal_type:
        events = events.filter(data__signal_type=filters.signal_type)
    labels_of = KeyTransform("labels", "data")
    if filters.label:
        events = events.filter(HasLabel(labels_of, filters.label))
    log_rows = (
        events.annotate(act=KT("data__action"), st=KT("data__signal_type"))
        .values_list("organisation", "act", "st")
        .annotate(n=Count("pk"))
        .order_by()
    )
    log_labels = (
        events.aggregate(
            **{
                f"l{i}": Count("pk", filter=Q(HasLabel(labels_of, slug)))
                for i, slug in enumerate(slugs)
            }
        )
        if slugs
        else {}
    )
    log = _tally(log_rows, {slug: log_labels[f"l{i}"] for i, slug in enumerate(slugs)})

    differences = [
        Difference(figure=figure, item=item, tables=tables[key], log=log[key])
        for key in sorted(tables.keys() | log.keys(), key=lambda k: (FIGURES.index(k[0]), k[1]))
        for figure, item in [key]
        if tables[key] != log[key]
    ]
    return LogAgreement(
        state="differ" if differences else "agree",
        tree_size=size,
        compared=log[("contributions", "all")],
        from_peers=from_peers,
        pending=len(pending),
        differences=differences,
    )
