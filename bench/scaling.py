"""Figure 4: jobs/s with 1, 2 and 4 real worker processes, ours against
plain `rq worker`; and the bar chart of it."""

from __future__ import annotations

from bench import drain, svg
from bench.context import Context
from bench.results import progress
from bench.table import Row
from bench.workers import GOAL_RATIO

NOTE = (
    "4: N demo.echo jobs drained by 1, 2, 4 `manage.py rqworker default "
    "--with-scheduler` processes (fork per job, as the README runs them) against "
    "`rq worker plain --serializer rq.serializers.JSONSerializer` processes "
    "(fork per job, no --with-scheduler) on bench.noop.noop. The workers are "
    "started first and timed once all are idle (start-up is reported apart); the "
    "clock runs from the moment the N jobs go into Redis (for ours: from just "
    "before the commit of records written untimed) until the finished and failed "
    "registries hold them all; our history is then recorded and checked. Plain "
    "then ours for each count, each from a clean slate."
)


def _label(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def figure(ctx: Context) -> None:
    jobs, counts = ctx.sizes.scaling, ctx.sizes.counts
    progress(f"figure 4: scaling, {jobs} jobs with {counts} worker processes")
    found: dict[str, list[drain.Drain]] = {"ours": [], "plain": []}
    for workers in counts:
        for side in ("plain", "ours"):
            found[side].append(drain.measure(ctx, side, workers, jobs))
    rows = ctx.results.rows
    for ours, base in zip(found["ours"], found["plain"], strict=True):
        rows.append(
            Row(
                f"4. {_label(ours.workers)}, {jobs:,} jobs (jobs/s)",
                ours.jobs_per_second,
                base.jobs_per_second,
                f">= {GOAL_RATIO:g}x RQ",
                ours.jobs_per_second >= GOAL_RATIO * base.jobs_per_second,
            )
        )
    for ours, base in zip(found["ours"][1:], found["plain"][1:], strict=True):
        rows.append(
            Row(
                f"4. speed-up, {_label(ours.workers)} / 1",
                ours.jobs_per_second / found["ours"][0].jobs_per_second,
                base.jobs_per_second / found["plain"][0].jobs_per_second,
                decimals=2,
            )
        )
    total = sum(d.jobs for d in found["ours"])
    rows.append(
        Row(
            "4. scaling: jobs done",
            f"{sum(d.done for d in found['ours'])}/{total} succeeded in DB",
            f"{sum(d.done for d in found['plain'])}/{total} finished",
            "all",
            all(d.done == d.jobs for d in (*found["ours"], *found["plain"])),
        )
    )
    startups = {
        side: ", ".join(f"{d.startup:.1f}" for d in drains)
        for side, drains in found.items()
    }
    ctx.results.details.append(
        f"4. seconds until every worker was idle, for {counts} workers: "
        f"ours {startups['ours']}; plain RQ {startups['plain']}"
    )
    if ctx.chart is not None:
        _chart(ctx, found)


def _chart(ctx: Context, found: dict[str, list[drain.Drain]]) -> None:
    assert ctx.chart is not None
    content = svg.bar_chart(
        f"Throughput by worker processes, {ctx.sizes.scaling:,} demo.echo jobs",
        "jobs/s",
        [_label(d.workers) for d in found["ours"]],
        [
            ("ours", [d.jobs_per_second for d in found["ours"]]),
            ("plain RQ", [d.jobs_per_second for d in found["plain"]]),
        ],
    )
    ctx.chart.parent.mkdir(parents=True, exist_ok=True)
    ctx.chart.write_text(content, encoding="utf-8")
    ctx.results.details.append(f"4. chart: {ctx.chart.name}")
