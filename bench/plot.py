"""Figure 9's chart: each screen's render time against the number of job
records, one panel per database (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from bench.stats import percentile  # noqa: E402


def render_by_records(sides: dict[str, dict[str, Any]], path: Path) -> None:
    """p95 (solid) and p50 (dotted) per screen, goals as grey lines."""
    figure, axes = plt.subplots(
        1, len(sides), figsize=(6 * len(sides), 4.5), sharey=True, squeeze=False
    )
    for axis, (side, found) in zip(axes[0], sides.items(), strict=True):
        steps = found["steps"]
        records = [step["records"] for step in steps]
        for screen in steps[0]["screens"]:
            times = [step["screens"][screen]["times"] for step in steps]
            (line,) = axis.plot(
                records, [percentile(t, 95) for t in times], marker="o", label=screen
            )
            axis.plot(
                records,
                [percentile(t, 50) for t in times],
                linestyle=":",
                color=line.get_color(),
            )
        for goal in (150, 300):
            axis.axhline(goal, color="grey", linewidth=0.8, linestyle="--")
        axis.set_xscale("log")
        axis.set_title(f"{side} ({found['version']})")
        axis.set_xlabel("job records (10 % dead)")
        axis.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("render time, ms (p95 solid, p50 dotted)")
    axes[0][0].legend(loc="upper left", fontsize="small")
    figure.suptitle("Console screens: render time against the number of job records")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
