"""The printable periodic transparency report: what happened on the hub in one month (or any
period), in numbers a consortium can publish."""

import calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from federation.contributions.models import Entry
from federation.reports import selectors
from federation.reports.log_agreement import LogAgreement, log_agreement
from federation.reports.selectors import ReportFilters
from federation.transparency.figures import log_figures
from federation.transparency.models import Checkpoint
from federation.vetting.models import Incident


@dataclass(frozen=True)
class TransparencyReport:
    first_day: date
    last_day: date
    title: str
    filters: ReportFilters
    totals: dict[str, int]
    by_member: list[dict[str, Any]]
    by_label: list[dict[str, Any]]
    by_signal_type: list[dict[str, Any]]
    by_action: list[dict[str, Any]]
    state_changes: dict[str, int]
    feedback: dict[str, int]
    incidents: list[Incident]
    entries_disputed_now: int
    checkpoint: Checkpoint | None
    # Counted from the log's leaves up to ``checkpoint`` (whole-month periods only): the figures
    # an auditor's verifier recomputes with --reconcile (docs/transparency.md).
    log_figures: dict[str, Any] | None = None
    # Whether the tables' contribution figures agree with the log's at ``checkpoint``.
    log_agreement: LogAgreement | None = None
    # Per peer: items sent (push), pulled and received, retractions among them, dead letters
    # (selectors).
    federation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retractions_propagated(self) -> int:
        return sum(row["sent_retractions"] for row in self.federation)

    @property
    def disputes(self) -> int:
        return self.state_changes.get(Entry.State.DISPUTED, 0)

    @property
    def retracted_entries(self) -> int:
        return self.state_changes.get(Entry.State.RETRACTED, 0)

    def rows(self) -> list[tuple[str, str, int]]:
        """The report as ``(section, item, count)`` rows, for CSV."""
        rows = [("totals", name, value) for name, value in self.totals.items()]
        rows += [("member", row["member"], row["total"]) for row in self.by_member]
        rows += [("label", row["label"], row["total"]) for row in self.by_label]
        rows += [("signal type", row["signal_type"], row["total"]) for row in self.by_signal_type]
        rows += [(row["source"], row["action"], row["total"]) for row in self.by_action]
        rows += [("entries moved to state", k, v) for k, v in sorted(self.state_changes.items())]
        rows += [("feedback", k, v) for k, v in sorted(self.feedback.items())]
        rows += [("incidents declared", i.name, 1) for i in self.incidents]
        for peer in self.federation:
            rows += [
                (f"federation with {peer['peer']}", name, peer[key])
                for name, key in FEDERATION_FIGURES
            ]
        # A snapshot, not a count over the period: as the page says, "as this report is generated".
        rows.append(("now", "entries disputed now", self.entries_disputed_now))
        agreement = self.log_agreement
        if agreement is not None:
            rows.append(("agreement with the log", agreement.state, len(agreement.differences)))
            for d in agreement.differences:
                section = f"differs from the log at checkpoint {agreement.tree_size}: {d.figure}"
                rows += [
                    (section, f"{d.item} (tables)", d.tables),
                    (section, f"{d.item} (log)", d.log),
                ]
        figures = self.log_figures
        if figures:
            section = f"from the log at checkpoint {figures['tree_size']}"
            rows.append((section, "events", figures["events"]))
            rows.append((section, "contributions accepted", figures["contributions_accepted"]))
            for name, key in LOG_FIGURE_SECTIONS:
                rows += [(f"{section}: {name}", item, n) for item, n in figures[key].items()]
        return rows


FEDERATION_FIGURES = (
    ("items sent (push, delivered)", "sent_items"),
    ("entries sent", "sent_entries"),
    ("retractions propagated", "sent_retractions"),
    ("items pulled by the peer (first pulls)", "pulled_items"),
    ("entries pulled", "pulled_entries"),
    ("retractions pulled", "pulled_retractions"),
    ("items received", "received_items"),
    ("entries received", "received_entries"),
    ("retractions received", "received_retractions"),
    ("dead letters", "dead_lettered"),
)

LOG_FIGURE_SECTIONS = (
    ("events by action", "events_by_action"),
    ("contributions by action", "contributions_by_action"),
    ("contributions by member", "contributions_by_organisation"),
    ("contributions by label", "contributions_by_label"),
    ("contributions by signal type", "contributions_by_signal_type"),
)


def _whole_month(first_day: date, last_day: date) -> str | None:
    last = calendar.monthrange(first_day.year, first_day.month)[1]
    if first_day.day == 1 and last_day == first_day.replace(day=last):
        return first_day.strftime("%Y-%m")
    return None


def transparency_report(
    *, first_day: date, last_day: date, title: str, filters: ReportFilters
) -> TransparencyReport:
    checkpoint = selectors.latest_checkpoint()
    month = _whole_month(first_day, last_day)
    figures = (
        log_figures(tree_size=checkpoint.tree_size, month=month)
        if checkpoint is not None and month is not None
        else None
    )
    return TransparencyReport(
        first_day=first_day,
        last_day=last_day,
        title=title,
        filters=filters,
        totals=selectors.overview_totals(filters=filters),
        by_member=selectors.counts_by_member(filters=filters),
        by_label=selectors.counts_by_label(filters=filters),
        by_signal_type=selectors.counts_by_signal_type(filters=filters),
        by_action=selectors.counts_by_action(filters=filters),
        state_changes={
            row["state"]: row["total"] for row in selectors.state_changes_by_state(filters=filters)
        },
        feedback={
            row["opinion"]: row["total"]
            for row in selectors.feedback_counts_by_opinion(filters=filters)
        },
        incidents=list(selectors.incidents_in_period(filters=filters)),
        entries_disputed_now=selectors.entries_in_state(state=Entry.State.DISPUTED),
        checkpoint=checkpoint,
        log_figures=figures,
        log_agreement=log_agreement(filters=filters),
        federation=selectors.federation_by_peer(filters=filters),
    )
