"""Runs every figure and turns the measurements into table rows."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from statistics import median

from rq.worker import BaseWorker

from bench import submit, workers
from bench.table import Row


@dataclass(frozen=True)
class Sizes:
    latency: int
    bulk: int
    worker: int
    rounds: int

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(300, 1000, 300, 10) if quick else cls(2000, 10_000, 2000, 20)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def latency(count: int, results: Results) -> None:
    progress(f"figure 1: submit latency, {count} calls each")
    found = submit.latency(count)
    p50, p99 = (found.ours(50), found.plain(50)), (found.ours(99), found.plain(99))
    results.rows += [
        Row("1. submit p50 (ms)", *p50, decimals=3),
        Row("1. submit p99 (ms)", *p99, f"< {submit.P99_LIMIT_MS:g} ms", found.fast, 3),
        Row(
            "1. submit p99 (ms), vs RQ",
            *p99,
            f"< {submit.P99_MAX_RATIO:g}x RQ",
            found.close_to_plain,
            3,
        ),
    ]


def bulk(count: int, results: Results) -> None:
    progress(f"figure 2: bulk submit of {count:,} jobs")
    ours, base = submit.bulk_ours(count), submit.bulk_plain(count)
    met = ours > submit.BULK_GOAL
    goal = f"> {submit.BULK_GOAL:,.0f} jobs/s"
    results.rows.append(
        Row(f"2. bulk submit x{count:,} (jobs/s)", ours, base, goal, met)
    )


def _spread(rounds: list[workers.Drained]) -> str:
    rates = [r.jobs_per_second for r in rounds]
    return f"{min(rates):,.0f} / {median(rates):,.0f} / {max(rates):,.0f}"


def worker_pair(
    label: str,
    classes: tuple[type[BaseWorker], type[BaseWorker]],
    sizes: Sizes,
    results: Results,
) -> None:
    progress(f"figure 3: {label}, {sizes.worker} jobs each in {sizes.rounds} rounds")
    mine, theirs = workers.compare(*classes, sizes.worker, sizes.rounds)
    ours, base = workers.combine(mine), workers.combine(theirs)
    met = ours.jobs_per_second >= workers.GOAL_RATIO * base.jobs_per_second
    goal = f">= {workers.GOAL_RATIO:g}x RQ"
    results.rows += [
        Row(
            f"3. {label} (jobs/s)",
            ours.jobs_per_second,
            base.jobs_per_second,
            goal,
            met,
        ),
        Row(
            f"3. {label}: jobs done",
            f"{ours.succeeded}/{ours.jobs} succeeded in DB",
            f"{base.succeeded}/{base.jobs} finished",
            "all",
            ours.succeeded == ours.jobs and base.succeeded == base.jobs,
        ),
    ]
    results.details.append(
        f"3. {label}, jobs/s per round (min / median / max): "
        f"ours {_spread(mine)}; plain RQ {_spread(theirs)}"
    )


def recorder(count: int, results: Results) -> None:
    progress(f"figure 3: recorder, the history of {count} jobs")
    found = workers.recorder(count)
    results.rows += [
        Row(
            f"3. recorder, {found.events:,} events (events/s)",
            found.events_per_second,
            None,
        ),
        Row(
            "3. recorder: jobs done",
            f"{found.succeeded}/{found.jobs} succeeded in DB",
            None,
            "all",
            found.succeeded == found.jobs,
        ),
    ]


def measure(sizes: Sizes) -> Results:
    results = Results()
    latency(sizes.latency, results)
    bulk(sizes.bulk, results)
    for label, console_class, rq_class in workers.PAIRS:
        worker_pair(label, (console_class, rq_class), sizes, results)
    recorder(sizes.worker, results)
    return results
