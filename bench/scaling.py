"""Figure 4: jobs/s with 1, 2 and 4 real worker processes, ours against
plain `rq worker` and `celery worker`; and the plot of it."""

from __future__ import annotations

from bench import drain, plots
from bench.context import Context
from bench.results import progress
from bench.table import Row
from bench.workers import GOAL_RATIO

#: Each side's name in the plot, ours first.
NAMES = {"ours": "ours", "plain": "plain RQ", "celery": "Celery"}
#: The order they run in for each count.
RUN_ORDER = ("plain", "celery", "ours")
NOTE = (
    "4: N demo.echo jobs drained by 1, 2, 4 `manage.py rqworker default "
    "--with-scheduler` processes (fork per job, as the README runs them) against "
    "`rq worker plain --serializer rq.serializers.JSONSerializer` processes "
    "(fork per job, no --with-scheduler) on bench.noop.noop, and against 1, 2, 4 "
    "`celery worker --pool=prefork --concurrency=1 --without-mingle` processes "
    "running the same function as a Celery task (broker and JSON results on the "
    "same server, databases 1 and 2; otherwise Celery's defaults: prefetch 4, "
    "and the pool's child process reused for every task, where RQ forks a new "
    "one per job). One Celery process per worker keeps the shape of ours: N "
    "independent consumers, each with its own connection, one job at a time, a "
    "main process and one child each (one Celery process with --concurrency N "
    "would share one consumer). Celery's fresh process per task "
    "(--max-tasks-per-child=1) is not the counterpart: in a trial on this "
    "machine it ran 0.26 tasks/s (30 tasks; the pool replaces a child every few "
    "seconds). The workers are started first and timed once all are idle (RQ: "
    "registered idle; Celery: answering a ping; start-up is reported apart); "
    "the clock runs from the moment the N jobs go into Redis (ours: just before "
    "the commit of records written untimed; RQ: one enqueue_many pipeline; "
    "Celery: one RENAME of a list filled untimed) until all are finished (RQ: "
    "in the finished and failed registries; Celery: N results stored); our "
    "history is then recorded and checked. Plain RQ, Celery, then ours for each "
    "count, each from a clean slate."
)


def _label(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def figure(ctx: Context) -> None:
    jobs, counts = ctx.sizes.scaling, ctx.sizes.counts
    progress(f"figure 4: scaling, {jobs} jobs with {counts} worker processes")
    found: dict[str, list[drain.Drain]] = {side: [] for side in NAMES}
    for workers in counts:
        for side in RUN_ORDER:
            found[side].append(drain.measure(ctx, side, workers, jobs))
    _rows(ctx, found)
    startups = {
        side: ", ".join(f"{d.startup:.1f}" for d in drains)
        for side, drains in found.items()
    }
    ctx.results.details.append(
        f"4. seconds until every worker was idle, for {counts} workers: "
        f"ours {startups['ours']}; plain RQ {startups['plain']}; "
        f"Celery {startups['celery']}"
    )
    ctx.draw(
        "throughput-by-workers",
        lambda path: plots.bars(
            path,
            f"Throughput by worker processes, {jobs:,} no-op jobs",
            "jobs/s (log scale)",
            [_label(w) for w in counts],
            {
                name: [d.jobs_per_second for d in found[side]]
                for side, name in NAMES.items()
            },
            log=True,
        ),
    )


def _speed_up(drains: list[drain.Drain], index: int) -> float:
    return drains[index].jobs_per_second / drains[0].jobs_per_second


def _rows(ctx: Context, found: dict[str, list[drain.Drain]]) -> None:
    jobs, rows = ctx.sizes.scaling, ctx.results.rows
    ours, plain, celery = found["ours"], found["plain"], found["celery"]
    for mine, base, other in zip(ours, plain, celery, strict=True):
        rows.append(
            Row(
                f"4. {_label(mine.workers)}, {jobs:,} jobs (jobs/s)",
                mine.jobs_per_second,
                base.jobs_per_second,
                f">= {GOAL_RATIO:g}x RQ",
                mine.jobs_per_second >= GOAL_RATIO * base.jobs_per_second,
                celery=other.jobs_per_second,
            )
        )
    for index in range(1, len(ours)):
        rows.append(
            Row(
                f"4. speed-up, {_label(ours[index].workers)} / 1",
                _speed_up(ours, index),
                _speed_up(plain, index),
                decimals=2,
                celery=_speed_up(celery, index),
            )
        )
    total = sum(d.jobs for d in ours)

    def done(drains: list[drain.Drain], what: str) -> str:
        return f"{sum(d.done for d in drains)}/{total} {what}"

    rows.append(
        Row(
            "4. scaling: jobs done",
            done(ours, "succeeded in DB"),
            done(plain, "finished"),
            "all",
            all(d.done == d.jobs for drains in found.values() for d in drains),
            celery=done(celery, "succeeded"),
            required=True,
        )
    )
