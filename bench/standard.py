"""Figure 12: a task written with Django's Tasks API next to a native one, in
the same run: submit latency (enqueue against job_submit) and the forking
worker's throughput draining each. Goal: within 1.2x of the native path."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from django.conf import settings

from bench import submit
from bench import workers as worker_pairs
from bench.context import Context
from bench.reset import reset
from bench.results import progress
from bench.table import Row
from jobs.backend import connect
from jobs.backend.workers import ConsoleWorker
from jobs.models import JobRecord
from jobs.processes.recorder import Recorder
from jobs.services import SubmitRequest, job_submit, job_submit_many

MODULE = "bench.standard_tasks"
GOAL = 1.2
STANDARD, NATIVE = "standard", "native"
NOTE = (
    "12: the same work (return the text) as a standard task "
    "(bench.standard_tasks.echo.enqueue(text=...), through jobs.tasks_backend) "
    "and as the native demo.echo (job_submit): submit calls take turns after 50 "
    "warm-up rounds; the worker figure is ConsoleWorker's burst over a queue "
    "filled beforehand, rounds alternating the two kinds. A standard job reads "
    "its record and earlier attempts from SQL (its TaskResult) and sends "
    "Django's task_started and task_finished signals."
)


def _standard() -> Any:
    """The bench's standard task; its module joins JOB_TASK_MODULES (forked
    workers inherit both)."""
    if MODULE not in settings.JOB_TASK_MODULES:
        settings.JOB_TASK_MODULES = [*settings.JOB_TASK_MODULES, MODULE]
    return importlib.import_module(MODULE).echo


def _fill(kind: str, count: int) -> None:
    if kind == STANDARD:
        echo = _standard()
        for i in range(count):
            echo.enqueue(text=str(i))
        return
    job_submit_many(
        requests=[
            SubmitRequest(task="demo.echo", payload={"text": str(i)})
            for i in range(count)
        ]
    )


def drain(kind: str, count: int) -> worker_pairs.Drained:
    reset()
    _fill(kind, count)
    worker: Any = ConsoleWorker(["default"], connection=connect.connection())
    seconds = worker_pairs._burst(worker)
    Recorder(consumer="bench").drain_all()
    done = JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()
    return worker_pairs.Drained(count, seconds, done)


def figure(ctx: Context) -> None:
    sizes = ctx.sizes
    progress(f"figure 12: Django's Tasks API, {sizes.latency} submits each")
    echo = _standard()
    calls: dict[str, Callable[[], object]] = {
        STANDARD: lambda: echo.enqueue(text="x"),
        NATIVE: lambda: job_submit(task="demo.echo", payload={"text": "x"}),
    }
    reset()
    found = submit.interleaved(sizes.latency, calls)
    for pct in (50, 99):
        standard, native = found.p(STANDARD, pct), found.p(NATIVE, pct)
        ctx.results.rows.append(
            Row(
                f"12. standard task submit p{pct:g} (ms)",
                standard,
                None,
                f"<= {GOAL:g}x native ({native:.3f})",
                standard <= GOAL * native,
                3,
            )
        )
    progress(f"figure 12: worker, {sizes.worker} jobs of each kind")
    rounds: dict[str, list[worker_pairs.Drained]] = {STANDARD: [], NATIVE: []}
    size = max(1, sizes.worker // sizes.rounds)
    for _ in range(sizes.rounds):
        for kind in (NATIVE, STANDARD):
            rounds[kind].append(drain(kind, size))
    standard_all = worker_pairs.combine(rounds[STANDARD])
    native_all = worker_pairs.combine(rounds[NATIVE])
    rate, native_rate = standard_all.jobs_per_second, native_all.jobs_per_second
    ctx.results.rows += [
        Row(
            "12. Worker (fork per job), standard task (jobs/s)",
            rate,
            None,
            f">= native / {GOAL:g} ({native_rate:,.0f})",
            rate * GOAL >= native_rate,
        ),
        Row(
            "12. standard tasks: jobs done",
            f"{standard_all.succeeded}/{standard_all.jobs} succeeded in DB",
            None,
            "all",
            standard_all.succeeded == standard_all.jobs,
            required=True,
        ),
    ]
