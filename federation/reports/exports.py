"""CSV exports of the reports: the same filters and numbers as the pages, streamed row by row so
that a long contribution list never sits in memory. Timestamps are written in the signed form of
the audit events' JSON (UTC, microseconds, ``Z``: ``federation.transparency.audit.signed_time``),
so that a CSV row and the log leaf it matches say the same moment in the same text."""

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.http import StreamingHttpResponse

from federation.reports import selectors
from federation.reports.history import EntryHistory
from federation.reports.periodic import TransparencyReport
from federation.reports.selectors import ReportFilters
from federation.transparency.audit import signed_time

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection); free text
# (reasons, notes) could start so, and gets a leading apostrophe.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose ``write`` hands back the line, for a streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    if value is None:
        return ""
    return value


def csv_response(
    *, filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def filename_for(report: str, filters: ReportFilters) -> str:
    parts = ["concordat", report]
    if filters.start is not None:
        parts.append("from-" + filters.start.date().isoformat())
    if filters.end is not None:
        parts.append("to-" + (filters.end - timedelta(days=1)).date().isoformat())
    return "_".join(parts) + ".csv"


CONTRIBUTION_COLUMNS = (
    "received_at",
    "created_at",
    "member",
    "action",
    "signal_type",
    "value",
    "labels",
    "status",
    "entry_id",
    "entry_state",
    "uuid",
    "key_id",
    "content_hash",
)

# Each overview report: its columns and how to compute its rows from the filters.
OverviewExport = tuple[Sequence[str], Callable[[ReportFilters], Iterable[Sequence[Any]]]]

OVERVIEW_EXPORTS: dict[str, OverviewExport] = {
    "by-period": (
        ("period_start", "add", "retract", "total"),
        lambda f: (
            (row["period"].isoformat(), row["add"], row["retract"], row["total"])
            for row in selectors.counts_by_period(filters=f)
        ),
    ),
    "by-member": (
        ("member", "contributions", "add", "retract", "entries"),
        lambda f: (
            (row["member"], row["total"], row["add"], row["retract"], row["entries"])
            for row in selectors.counts_by_member(filters=f)
        ),
    ),
    "by-label": (
        ("label", "contributions"),
        lambda f: ((row["label"], row["total"]) for row in selectors.counts_by_label(filters=f)),
    ),
    "by-signal-type": (
        ("signal_type", "contributions", "add", "retract"),
        lambda f: (
            (row["signal_type"], row["total"], row["add"], row["retract"])
            for row in selectors.counts_by_signal_type(filters=f)
        ),
    ),
    "by-action": (
        ("source", "action", "count"),
        lambda f: (
            (row["source"], row["action"], row["total"])
            for row in selectors.counts_by_action(filters=f)
        ),
    ),
    "audit-actions": (
        ("audit_action", "count"),
        lambda f: (
            (row["action"], row["total"]) for row in selectors.audit_counts_by_action(filters=f)
        ),
    ),
    "contributions": (
        CONTRIBUTION_COLUMNS,
        lambda f: contribution_rows(
            selectors.contributions_filtered(filters=f).order_by("received_at", "pk")
        ),
    ),
}


def contribution_rows(queryset) -> Iterator[tuple]:
    """One row per contribution, read in chunks (no model instances, no N+1)."""
    for row in selectors.iterate(
        queryset,
        "received_at",
        "created_at",
        "organisation__slug",
        "action",
        "entry__signal_type",
        "entry__value",
        "labels",
        "status",
        "entry_id",
        "entry__state",
        "uuid",
        "signing_key__key_id",
        "content_hash",
    ):
        (received, created, *middle, labels, status, entry_id, state, uuid, key_id, digest) = row
        yield (
            signed_time(received),
            signed_time(created),
            *middle,
            " ".join(labels),
            status,
            entry_id,
            state,
            str(uuid),
            key_id,
            digest,
        )


def _fields_verdict(checked) -> str:
    return "match" if checked.fields_match else f"MISMATCH({checked.mismatched_fields})"


def entry_history_rows(history: EntryHistory) -> Iterator[tuple]:
    """The entry page as ``(kind, when, member, what, detail, leaf_index, proof)`` rows; ``sent``
    and ``received`` rows name the peer in the member column."""
    for checked in history.contributions:
        c = checked.contribution
        yield (
            "contribution",
            signed_time(c.received_at),
            c.organisation.slug,
            c.action,
            f"uuid={c.uuid} key_id={c.signing_key.key_id} status={c.status} "
            f"labels={' '.join(c.labels)} content_hash={c.content_hash} "
            f"signature={'valid' if checked.signature_valid else 'INVALID'} "
            f"stored_fields={_fields_verdict(checked)}",
            "",
            "",
        )
    for recorded in history.decisions:
        d = recorded.decision
        yield (
            "decision",
            signed_time(d.created_at),
            d.organisation.slug if d.organisation else "",
            f"{d.kind} {d.verdict}",
            d.reason,
            "",
            "",
        )
    for f in history.feedback:
        yield (
            "feedback",
            signed_time(f.updated_at),
            f.organisation.slug,
            f.opinion,
            f.note,
            "",
            "",
        )
    for step in history.sent:
        row = step.row
        yield (
            "sent",
            signed_time(row.delivered_at or row.created_at),
            step.peer,
            step.item,
            f"state={row.state} attempts={row.attempts}"
            + (f" moot={row.moot_reason}" if row.moot_reason else "")
            + (f" last_error={row.last_error}" if row.last_error else ""),
            "" if step.leaf_index is None else step.leaf_index,
            step.proof_url or step.status,
        )
    for step in history.pulled:
        yield (
            "pulled",
            signed_time(step.row.pulled_at),
            step.peer,
            step.item,
            f"digest={step.row.digest}",
            "" if step.leaf_index is None else step.leaf_index,
            step.proof_url or step.status,
        )
    for step in history.received:
        row = step.row
        yield (
            "received",
            signed_time(row.received_at),
            step.peer,
            step.item,
            f"via={row.via} path={'>'.join(row.path)} scope={row.effective_scope}",
            "" if step.leaf_index is None else step.leaf_index,
            step.proof_url or step.status,
        )
    for logged in history.events:
        e = logged.event
        yield (
            "audit_event",
            signed_time(e.occurred_at),
            e.organisation,
            e.action,
            f"{e.object_type}:{e.object_id} by {e.actor_label or e.actor_id}",
            "" if e.leaf_index is None else e.leaf_index,
            logged.proof_url or logged.status,
        )


ENTRY_HISTORY_COLUMNS = ("kind", "when", "member", "what", "detail", "leaf_index", "proof")
SEARCH_COLUMNS = CONTRIBUTION_COLUMNS
TRANSPARENCY_COLUMNS = ("section", "item", "count")


def transparency_rows(report: TransparencyReport) -> list[tuple[str, str, int]]:
    return report.rows()
