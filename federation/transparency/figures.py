"""Headline figures computed from the log itself, not from the mutable tables the reports read:
what an auditor's verifier recomputes from the leaves (``--reconcile``) to tie a report to a
checkpoint (docs/transparency.md, "Figures from the log").

The figures count the events with ``leaf_index < tree_size`` — exactly the leaves of the
checkpoint of that size — optionally only those whose ``occurred_at`` (UTC) falls in one month.
"""

import re
from collections import Counter
from datetime import UTC, datetime

from django.db.models import Count

from federation.errors import InvalidInput
from federation.transparency.actions import Action, Key
from federation.transparency.log_selectors import _published_size
from federation.transparency.models import AuditEvent

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def parse_month(text: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as the UTC interval [first instant, first instant of the next month)."""
    match = _MONTH.fullmatch(text)
    # Year 0000 does not exist (a 500 from datetime before, found by the schema fuzzer).
    if not match or int(match[1]) < 1:
        raise InvalidInput(
            "month must be YYYY-MM.", details={"parameter": "month", "value": text[:16]}
        )
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    if (year, month) == (9999, 12):  # the next month is beyond datetime's range
        return start, datetime.max.replace(tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _sorted(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items()))


def log_figures(*, tree_size: int, month: str | None = None) -> dict:
    """Counts over the first ``tree_size`` leaves: events by action, and accepted contributions
    by contribution action, organisation, label and signal type (a contribution counts once for
    each of its labels). ``tree_size`` may not exceed the latest checkpoint's size."""
    published = _published_size()
    if not 0 <= tree_size <= published:
        raise InvalidInput(
            f"size must be between 0 and the latest checkpoint's size ({published}).",
            code="bad_tree_size",
            details={"size": tree_size, "latest": published},
        )
    events = AuditEvent.objects.filter(leaf_index__isnull=False, leaf_index__lt=tree_size)
    if month is not None:
        start, end = parse_month(month)
        events = events.filter(occurred_at__gte=start, occurred_at__lt=end)
    by_action = Counter(
        dict(events.order_by().values("action").annotate(n=Count("id")).values_list("action", "n"))
    )
    accepted = {"add": Counter(), "retract": Counter()}
    by_organisation: Counter = Counter()
    by_label: Counter = Counter()
    by_signal_type: Counter = Counter()
    rows = events.filter(action=Action.CONTRIBUTION_ACCEPTED).values_list("organisation", "data")
    for organisation, data in rows.iterator(chunk_size=2000):
        accepted.setdefault(str(data.get(Key.ACTION)), Counter())[organisation] += 1
        by_organisation[organisation] += 1
        by_signal_type[str(data.get(Key.SIGNAL_TYPE))] += 1
        for label in data.get(Key.LABELS) or []:
            by_label[str(label)] += 1
    return {
        "tree_size": tree_size,
        "month": month,
        "events": sum(by_action.values()),
        "events_by_action": _sorted(by_action),
        "contributions_accepted": sum(by_organisation.values()),
        "contributions_by_action": {
            action: sum(counter.values()) for action, counter in sorted(accepted.items())
        },
        "contributions_by_organisation": _sorted(by_organisation),
        "contributions_by_label": _sorted(by_label),
        "contributions_by_signal_type": _sorted(by_signal_type),
    }
