"""SVG charts for the reports, drawn on the server with pygal and inlined in the page.

Pygal's interactive script is switched off (``js=[]``, and its inline config script removed): the page fetches nothing from outside and
prints as it shows. Without hover tooltips every bar carries its value as text, so a chart reads
the same on screen and on paper. Each chart has a table beside it in the page holding the same
numbers, for screen readers and for copying.
"""

from collections.abc import Sequence
from typing import Any

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.etree import etree
from pygal.style import Style

# Readable on screen and in print: dark text on white, a colour-blind-safe palette (Okabe-Ito).
REPORT_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    opacity="0.9",
    opacity_hover="1",
    transition="0ms",
    font_family="'DejaVu Sans', 'Liberation Sans', Arial, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=13,
    value_label_font_size=13,
    title_font_size=17,
    legend_font_size=13,
    tooltip_font_size=13,
    colors=("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"),
)

_COMMON: dict[str, Any] = {
    "js": [],
    "disable_xml_declaration": True,
    "style": REPORT_STYLE,
    "width": 760,
    "print_values": True,
    "print_zeroes": False,
    "show_y_guides": True,
    "margin": 16,
    "truncate_label": -1,
    "truncate_legend": -1,
    "no_data_text": "No data for these filters",
}


def _render(chart: pygal.graph.graph.Graph) -> SafeString:
    """The chart as an inline ``<svg>`` element with no script in it."""
    root = chart.render_tree()
    # Even with js=[] pygal embeds its config as an inline script; the page needs none of it.
    for parent in root.iter():
        for child in list(parent):
            if child.tag == "script":
                parent.remove(child)
    # Serialised by the XML library, so every label taken from the data is escaped.
    return mark_safe(etree.tostring(root, encoding="unicode"))  # noqa: S308


# A chart with fewer periods than this is drawn with blank slots around them, so that one day's
# bar is one bar's width, not the whole plot.
MIN_PERIOD_SLOTS = 8
MAX_TICKS = 8


def count_ticks(largest: int) -> list[int]:
    """Whole-number axis ticks from 0 to at least ``largest``, at a step of 1, 2 or 5 times a
    power of ten, at most ``MAX_TICKS`` + 1 of them: counts never get ticks such as 0.2 or 2.8."""
    largest = max(int(largest), 1)
    step = 1
    while True:
        for factor in (1, 2, 5):
            candidate = step * factor
            if -(-largest // candidate) <= MAX_TICKS:
                top = -(-largest // candidate) * candidate
                return list(range(0, top + 1, candidate))
        step *= 10


def _count_axis(largest: int) -> dict[str, Any]:
    ticks = count_ticks(largest)
    return {
        "y_labels": ticks,
        "range": (0, ticks[-1]),
        "value_formatter": lambda value: f"{value:,.0f}",
    }


def period_chart(rows: Sequence[dict[str, Any]], *, granularity: str) -> SafeString:
    """Adds and retracts per period, stacked."""
    many = len(rows) > 16
    labels = [_period_label(row["period"], granularity) for row in rows]
    adds: list[int | None] = [row["add"] for row in rows]
    retracts: list[int | None] = [row["retract"] for row in rows]
    if rows and len(rows) < MIN_PERIOD_SLOTS:
        before = (MIN_PERIOD_SLOTS - len(rows)) // 2
        after = MIN_PERIOD_SLOTS - len(rows) - before
        labels = [""] * before + labels + [""] * after
        adds = [None] * before + adds + [None] * after
        retracts = [None] * before + retracts + [None] * after
    largest = max((row["add"] + row["retract"] for row in rows), default=0)
    chart = pygal.StackedBar(
        **{
            **_COMMON,
            "height": 360,
            "print_values": not many,
            "x_label_rotation": 40 if many else 0,
            "show_minor_x_labels": not many,
            "x_labels_major_every": max(1, len(rows) // 12) if many else None,
            "legend_at_bottom": True,
            "legend_at_bottom_columns": 2,
            **(_count_axis(largest) if rows else {}),
        }
    )
    chart.title = f"Contributions per {granularity}"
    chart.x_labels = labels
    chart.add("Add", adds)
    chart.add("Retract", retracts)
    return _render(chart)


def _period_label(moment, granularity: str) -> str:
    if granularity == "month":
        return moment.strftime("%b %Y")
    if granularity == "week":
        return "wk " + moment.strftime("%d %b")
    return moment.strftime("%d %b")


def ranking_chart(
    rows: Sequence[dict[str, Any]], *, key: str, title: str, series: str = "Contributions"
) -> SafeString:
    """One horizontal bar per row (members, labels, types, actions), largest on top."""
    shown = list(rows)[:20]
    chart = pygal.HorizontalBar(
        **{
            **_COMMON,
            # Drawn at about the width of a half-page column, so the text is not scaled down.
            "width": 520,
            "height": max(200, 90 + 40 * len(shown)),
            "show_legend": False,
            **(_count_axis(max(row["total"] for row in shown)) if shown else {}),
        }
    )
    chart.title = title
    # pygal draws the first horizontal bar at the bottom; reverse so the largest is on top.
    ordered = list(reversed(shown))
    chart.x_labels = [str(row[key]) for row in ordered]
    chart.add(series, [row["total"] for row in ordered])
    return _render(chart)
