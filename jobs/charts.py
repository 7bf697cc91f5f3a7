"""Small server-rendered SVG charts for the console: no chart library, no JS.

Pure functions from numbers to escaped markup, so they are easy to test and
safe with any label (every text goes through format_html).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:
    from jobs.selectors.overview import ChartData

WIDTH = 360
HEIGHT = 150
LEFT = 46  # room for the y tick labels
RIGHT = 10
TOP = 18  # room for the unit above the axis
BOTTOM = 22  # room for the x labels


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    #: CSS class of the line: "series-0".."series-5" or "series-bad".
    tone: str = "series-0"


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    series: list[Series]
    svg: SafeString


def duration_text(seconds: float | None) -> str:
    """Plain units an operator reads at a glance: "42 s", "3 min 5 s", "2 h 4 min"."""
    if seconds is None:
        return ""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (min 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def tick_text(value: float) -> str:
    if value >= 10 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def downsample(
    values: Sequence[float],
    size: int,
    how: Callable[[Sequence[float]], float] = mean,
) -> list[float]:
    """`size` points, each summarising an equal run of consecutive values
    (mean for rates, max for "worst wait"); shorter input is returned as is."""
    if size <= 0 or len(values) <= size:
        return list(values)
    step = len(values) / size
    return [
        how(values[round(i * step) : round((i + 1) * step)] or [0.0])
        for i in range(size)
    ]


def _points(values: Sequence[float], top: float) -> list[tuple[float, float]]:
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    count = len(values)
    found = []
    for i, value in enumerate(values):
        x = LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)
        y = TOP + plot_h * (1 - min(max(value, 0.0), top) / top)
        found.append((round(x, 1), round(y, 1)))
    return found


def _axes(top: float, unit: str, x_labels: Sequence[str]) -> SafeString:
    bottom = HEIGHT - BOTTOM
    middle = TOP + (bottom - TOP) / 2
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT, y, WIDTH - RIGHT, y, LEFT - 4, y + 4, tick_text(value))
            for y, value in ((TOP, top), (middle, top / 2), (bottom, 0.0))
        ),
    )
    anchors = ("start", "middle", "end")
    xs = (LEFT, LEFT + (WIDTH - LEFT - RIGHT) / 2, WIDTH - RIGHT)
    labels = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (x, HEIGHT - 6, anchor, label)
            for x, anchor, label in zip(xs, anchors, x_labels, strict=False)
        ),
    )
    return format_html(
        '<text class="unit" x="{}" y="{}">{}</text>{}{}'
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>',
        4,
        11,
        unit,
        grid,
        labels,
        LEFT,
        bottom,
        WIDTH - RIGHT,
        bottom,
    )


def _line(series: Series, top: float) -> SafeString:
    points = " ".join(f"{x},{y}" for x, y in _points(series.values, top))
    if not points:
        return mark_safe("")
    return format_html(
        '<polyline class="line {}" points="{}"><title>{}</title></polyline>',
        series.tone,
        points,
        series.label,
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    unit: str,
    x_labels: Sequence[str] = ("", "", "now"),
) -> SafeString:
    """An inline SVG line chart: one polyline per series, one point per value,
    y from 0 to a round number above the peak, labelled in `unit`."""
    peak = max((v for s in series for v in s.values), default=0.0)
    top = nice_ceiling(peak)
    latest = ", ".join(
        f"{s.label} {tick_text(s.values[-1])}" for s in series if s.values
    )
    summary = f"{title}: peak {tick_text(peak)} {unit}"
    if latest:
        summary += f"; latest {latest}"
    lines = format_html_join("", "{}", ((_line(s, top),) for s in series))
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {} {}" '
        'role="img" preserveAspectRatio="xMidYMid meet"><title>{}</title>{}{}</svg>',
        WIDTH,
        HEIGHT,
        summary,
        _axes(top, unit, x_labels),
        lines,
    )


def _chart(
    title: str, unit: str, series: list[Series], x_labels: Sequence[str]
) -> Chart:
    svg = line_chart(series, title=title, unit=unit, x_labels=x_labels)
    return Chart(title=title, unit=unit, series=series, svg=svg)


def overview_charts(data: ChartData) -> list[Chart]:
    """Throughput, failures and oldest wait per queue for the overview."""
    x_labels = (
        ("60 min ago", "30 min ago", "now")
        if data.window == "hour"
        else ("24 h ago", "12 h ago", "now")
    )
    waits = [
        Series(queue, values, f"series-{i % 6}")
        for i, (queue, values) in enumerate(data.oldest_wait.items())
    ]
    return [
        _chart(
            "Jobs succeeded per minute",
            "jobs/min",
            [Series("succeeded", data.processed, "series-ok")],
            x_labels,
        ),
        _chart(
            "Failed attempts per minute",
            "attempts/min",
            [Series("failed attempts", data.failed, "series-bad")],
            x_labels,
        ),
        _chart("Oldest wait per queue", "seconds", waits, x_labels),
    ]
