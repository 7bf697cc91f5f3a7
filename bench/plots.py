"""PNG plots of the figures, drawn by matplotlib's Agg renderer.

Only `matplotlib.figure.Figure` is used, never pyplot: no display, no global
state, nothing for a headless machine to trip on. Each side keeps its colour
in every plot.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from bench.stats import percentile

COLOURS = {"ours": "#3b6ea5", "plain RQ": "#9aa3ad", "Celery": "#5a9e6f"}
OTHERS = ("#d08c3a", "#8c5aa5", "#c05050")
SIZE = (7.0, 4.2)
DPI = 110


def colour(name: str, index: int) -> str:
    """A side's colour (also for "ours p99" and the like), else another."""
    for side, value in COLOURS.items():
        if name == side or name.startswith(f"{side} "):
            return value
    return OTHERS[index % len(OTHERS)]


@contextmanager
def drawing(path: Path, title: str, xlabel: str, ylabel: str) -> Iterator[Axes]:
    """Axes to draw on; the PNG is written to `path` when the block ends."""
    figure = Figure(figsize=SIZE, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, color="#e3e3e3", linewidth=0.8)
    axes.set_axisbelow(True)
    yield axes
    if axes.get_legend_handles_labels()[0]:
        axes.legend(frameon=False, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" stamp: a re-run that draws the same plot writes the same file.
    figure.savefig(path, dpi=DPI, metadata={"Software": None})


def _thousands(value: float, _: object) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def bars(
    path: Path,
    title: str,
    ylabel: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    log: bool = False,
) -> None:
    """Grouped bars: one group per label, one bar per series, values on top."""
    width = 0.8 / max(1, len(series))
    with drawing(path, title, "", ylabel) as axes:
        for index, (name, values) in enumerate(series.items()):
            offset = (index - (len(series) - 1) / 2) * width
            drawn = axes.bar(
                [g + offset for g in range(len(groups))],
                values,
                width * 0.95,
                label=name,
                color=colour(name, index),
            )
            axes.bar_label(drawn, fmt="{:,.0f}", fontsize=8, padding=2)
        axes.set_xticks(range(len(groups)), list(groups))
        axes.grid(False, axis="x")
        if log:
            axes.set_yscale("log")
            axes.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            for axis_format in (
                axes.yaxis.set_major_formatter,
                axes.yaxis.set_minor_formatter,
            ):
                axis_format(FuncFormatter(_thousands))
        axes.margins(y=0.12)


def cdf(
    path: Path, title: str, xlabel: str, series: Mapping[str, Sequence[float]]
) -> None:
    """Cumulative distribution of each series' samples (log x), with its p50
    and p99 in the legend."""
    with drawing(path, title, xlabel, "fraction of calls at or under") as axes:
        for index, (name, samples) in enumerate(series.items()):
            ordered = sorted(samples)
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            label = (
                f"{name}: p50 {percentile(ordered, 50):.2f}, "
                f"p99 {percentile(ordered, 99):.2f}"
            )
            axes.step(
                ordered, fractions, where="post", label=label, color=colour(name, index)
            )
        for level in (0.5, 0.99):
            axes.axhline(level, color="#888888", linestyle=":", linewidth=0.8)
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axes.set_ylim(0, 1.01)


def lines(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    log_x: bool = True,
    dashed: Collection[str] = (),
) -> None:
    """One line with markers per series over the same x values (e.g. a
    figure against the number of stored job records); series named in
    `dashed` are drawn dashed."""
    with drawing(path, title, xlabel, ylabel) as axes:
        for index, (name, values) in enumerate(series.items()):
            axes.plot(
                x,
                values,
                marker="o",
                linestyle="--" if name in dashed else "-",
                label=name,
                color=colour(name, index),
            )
        if log_x:
            axes.set_xscale("log")
            axes.minorticks_off()
        axes.set_xticks(list(x), [f"{v:,.0f}" for v in x])
        axes.set_ylim(bottom=0)


def render_by_records(sides: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """The screens figure: each screen's render time against the number of job
    records, one panel per database; p95 solid, p50 dotted, goals dashed."""
    figure = Figure(figsize=(6.0 * len(sides), 4.5), layout="constrained")
    panels = figure.subplots(1, len(sides), sharey=True, squeeze=False)[0]
    for axes, (side, found) in zip(panels, sides.items(), strict=True):
        steps = found["steps"]
        records = [step["records"] for step in steps]
        for screen in steps[0]["screens"]:
            times = [step["screens"][screen]["times"] for step in steps]
            (line,) = axes.plot(
                records, [percentile(t, 95) for t in times], marker="o", label=screen
            )
            axes.plot(
                records,
                [percentile(t, 50) for t in times],
                linestyle=":",
                color=line.get_color(),
            )
        for goal in (150, 300):
            axes.axhline(goal, color="grey", linewidth=0.8, linestyle="--")
        axes.set_xscale("log")
        axes.set_title(f"{side} ({found['version']})", fontsize=11)
        axes.set_xlabel("job records (10 % dead)")
        axes.grid(True, which="major", alpha=0.3)
    panels[0].set_ylabel("render time, ms (p95 solid, p50 dotted)")
    panels[0].legend(loc="upper left", fontsize="small")
    figure.suptitle("Console screens: render time against the number of job records")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
