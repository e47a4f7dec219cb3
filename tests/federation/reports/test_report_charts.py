"""The report charts read well: whole-number count ticks, one period drawn as one bar, and the
overview says that label and type filters do not narrow log events."""

import re
from datetime import date, timedelta

import pytest
from django.test import Client

from federation.contributions.models import Label
from federation.reports import charts


def bar_widths(svg: str) -> list[float]:
    return [
        float(width)
        for width in re.findall(r'<rect [^>]*width="([0-9.]+)"[^>]*class="rect reactive', svg)
    ]


def axis_labels(svg: str) -> list[str]:
    """The numeric axis tick texts (the category labels are words; bar values have their own
    ``value`` class and are left out)."""
    texts = re.findall(r'<text [^>]*class="(?:major|)"[^>]*>([^<]*)</text>', svg)
    return [text for text in texts if re.fullmatch(r"[0-9][0-9.,]*", text)]


def test_count_axis_ticks_are_whole_numbers():
    svg = charts.ranking_chart(
        [{"member": "acme", "total": 3}, {"member": "globex", "total": 1}],
        key="member",
        title="Contributions by member",
    )
    ticks = axis_labels(svg)
    assert ticks == ["0", "1", "2", "3"]
    assert "0.2" not in svg and ">2.8<" not in svg


def test_large_counts_get_round_ticks_with_thousands_separators():
    svg = charts.ranking_chart(
        [{"member": "acme", "total": 12_345}], key="member", title="Contributions by member"
    )
    assert axis_labels(svg) == [f"{n:,}" for n in range(0, 14_001, 2_000)]
    assert ">12,345<" in svg


def test_count_ticks_stay_few_and_cover_the_largest_value():
    for largest in (0, 1, 7, 9, 10, 31, 99, 101, 999, 1_000_001):
        ticks = charts.count_ticks(largest)
        assert ticks[0] == 0 and ticks[-1] >= largest
        assert len(ticks) <= charts.MAX_TICKS + 1
        assert all(isinstance(tick, int) for tick in ticks)


def test_a_single_period_is_one_bar_wide_not_the_whole_plot():
    one = charts.period_chart(
        [{"period": date(2026, 10, 2), "add": 3, "retract": 1}], granularity="day"
    )
    eight = charts.period_chart(
        [
            {"period": date(2026, 10, 1) + timedelta(days=i), "add": 1, "retract": 0}
            for i in range(8)
        ],
        granularity="day",
    )
    assert max(bar_widths(one)) == pytest.approx(max(bar_widths(eight)))
    assert max(bar_widths(one)) < 760 / 6
    assert "02 Oct" in one


@pytest.mark.django_db
def test_overview_says_label_and_type_filters_do_not_narrow_log_events(auditor):
    client = Client()
    client.force_login(auditor.user)
    unfiltered = client.get("/reports/").content.decode()
    assert 'data-note="log-filters"' not in unfiltered
    Label.objects.get_or_create(slug="propaganda", defaults={"name": "P", "description": ""})
    for query in ("label=propaganda", "signal_type=md5"):
        html = client.get(f"/reports/?{query}").content.decode()
        assert 'data-note="log-filters"' in html, query
        assert "Log events are not narrowed by label or signal type" in html
