"""Figure 13: many I/O-bound jobs at once on one host (issue 19).

N jobs that each sleep S seconds, all at once: our one worker process with N
thread slots (`rqworker --concurrency N --execution thread`), plain RQ's
`rq worker-pool -n N` (N forked workers) and Celery's thread pool
(`celery worker --pool=threads --concurrency=N`). The whole worker tree's
PSS (proportional set size: shared pages counted once across the tree) is
sampled every 0.25 s while the jobs run; its peak is the figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from django.conf import settings

from bench import celery_app, drain, plain, procs
from bench.context import Context
from bench.pss import tree_kb
from bench.reset import reset
from bench.results import progress
from bench.table import Row
from jobs import services
from jobs.backend import live, queueing

GOAL_MB = 100.0
PROCESS_GOAL_MB = 15.0
NOTE = (
    "13: N jobs that each sleep S seconds, submitted at once to one host: ours "
    "is one `rqworker default --concurrency N --execution thread` process "
    "running demo.sleep (history events emitted, no monitor), plain RQ is "
    "`rq worker-pool plain -n N` (N forked workers, each forking a job "
    "process) running bench.noop.sleep, Celery is one `celery worker "
    "--pool=threads --concurrency=N` running the same function; then ours "
    "again with `--execution process` (N long-lived job processes) against "
    "Celery `--pool=prefork --concurrency=N`, per slot = tree PSS / N (the "
    "plain RQ column: its worker pool's); and ours with `--execution fork` (a "
    "fresh job process per job, N at once under one worker). The no-op row "
    "is figure 4's drain "
    "with one worker process: ours with one process-model slot "
    "(`--concurrency 1 --execution process`), Celery prefork with one child. "
    "Each side "
    "starts once its workers are idle; time = from the first job put into "
    "Redis to the last one finished. Peak PSS: the sum of "
    "/proc/PID/smaps_rollup Pss over the worker's whole process tree, sampled "
    "every 0.25 s; MB = 10^6 bytes."
)
SAMPLE_EVERY = 0.25


class PeakPss:
    """Samples the PSS and RSS of a process tree in a thread, keeps peaks."""

    def __init__(self, pid: int) -> None:
        self.pid, self.pss_kb, self.rss_kb = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pss, rss, _ = tree_kb(self.pid)
            self.pss_kb, self.rss_kb = max(self.pss_kb, pss), max(self.rss_kb, rss)
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_pss_mb: float
    peak_rss_mb: float
    done: int


def _measure(
    ctx: Context,
    name: str,
    argv: list[str],
    env: dict[str, str],
    ready: Callable[[procs.Fleet], None],
    push: Callable[[], None],
    done: Callable[[], int],
    jobs: int,
    seconds: float,
) -> Run:
    reset()
    with procs.Fleet(ctx.directory, graceful=False, quiet=True) as fleet:
        pid = fleet.start(name, argv, env)
        ready(fleet)
        with PeakPss(pid) as peak:
            start = time.perf_counter()
            push()
            fleet.wait_until(lambda: done() >= jobs, seconds * 4 + 120)
            took = time.perf_counter() - start
        return Run(took, peak.pss_kb * 1024 / 1e6, peak.rss_kb * 1024 / 1e6, done())


def _ours(ctx: Context, jobs: int, seconds: float, model: str = "thread") -> Run:
    argv = [*procs.MANAGE, "rqworker", "default", "--concurrency", str(jobs)]
    argv += ["--execution", model, "-v", "0"]
    ids: list[str] = []

    def ready(fleet: procs.Fleet) -> None:
        procs.wait_idle(fleet, list(fleet.children))

    def push() -> None:
        for _ in range(jobs):
            record = services.job_submit(
                task="demo.sleep", payload={"seconds": seconds}
            )
            ids.append(str(record.pk))

    def done() -> int:
        found = queueing.statuses(ids).values()
        return sum(1 for status in found if status == "finished")

    name = f"slots-ours-{model}"
    return _measure(ctx, name, argv, {}, ready, push, done, jobs, seconds)


def _plain(ctx: Context, jobs: int, seconds: float) -> Run:
    argv = [
        procs.RQ_CLI,
        "worker-pool",
        plain.QUEUE,
        "-n",
        str(jobs),
        "--url",
        settings.REDIS_URL,
        "--serializer",
        "rq.serializers.JSONSerializer",
        "--logging-level",
        "WARNING",
        "--path",
        str(procs.BASE_DIR),
    ]

    def ready(fleet: procs.Fleet) -> None:
        def idle() -> bool:
            found = live.live_workers()
            return sum(1 for w in found if w.state == "idle") >= jobs

        fleet.wait_until(idle, 180)

    def push() -> None:
        queue = plain.queue()
        datas = [
            queue.prepare_data("bench.noop.sleep", kwargs={"seconds": seconds})
            for _ in range(jobs)
        ]
        plain.enqueue_many(queue, datas)

    def done() -> int:
        return int(plain.queue().finished_job_registry.count)

    return _measure(ctx, "slots-plain", argv, {}, ready, push, done, jobs, seconds)


def _celery(ctx: Context, jobs: int, seconds: float, pool: str = "threads") -> Run:
    argv = [
        procs.CELERY_CLI,
        "-A",
        "bench.celery_app",
        "worker",
        f"--pool={pool}",
        f"--concurrency={jobs}",
        "--loglevel=WARNING",
        "--without-mingle",
        "-n",
        "slots@%h",
    ]

    def ready(fleet: procs.Fleet) -> None:
        celery_app.wait_ready(["slots"], fleet.check_alive)

    def push() -> None:
        for _ in range(jobs):
            celery_app.sleep.apply_async(kwargs={"seconds": seconds})

    env = celery_app.urls(settings.REDIS_URL)
    name, finished = f"slots-celery-{pool}", celery_app.finished
    return _measure(ctx, name, argv, env, ready, push, finished, jobs, seconds)


def figure(ctx: Context) -> None:
    jobs, seconds = ctx.sizes.slot_jobs, ctx.sizes.slot_seconds
    progress(f"figure 13: {jobs} jobs sleeping {seconds:g} s at once, one host")
    ours = _ours(ctx, jobs, seconds)
    base = _plain(ctx, jobs, seconds)
    celery = _celery(ctx, jobs, seconds)
    progress("figure 13: the same in the process model and Celery prefork")
    ours_proc = _ours(ctx, jobs, seconds, "process")
    prefork = _celery(ctx, jobs, seconds, "prefork")
    progress("figure 13: the same in the fork model (a fresh process per job)")
    ours_fork = _ours(ctx, jobs, seconds, "fork")
    label = f"13. {jobs} x {seconds:g} s sleeps at once"
    ctx.results.rows += [
        Row(
            f"{label}, all done (s)",
            ours.seconds,
            base.seconds,
            f"< {seconds + 1:g} s",
            ours.seconds < seconds + 1,
            1,
            celery=celery.seconds,
        ),
        Row(
            f"{label}, worker tree peak PSS (MB)",
            ours.peak_pss_mb,
            base.peak_pss_mb,
            f"<= {GOAL_MB:g} MB",
            ours.peak_pss_mb <= GOAL_MB,
            1,
            celery=celery.peak_pss_mb,
        ),
        Row(
            f"{label}, every job done",
            float(ours.done),
            float(base.done),
            "all",
            ours.done == jobs and base.done == jobs,
            required=True,
            celery=float(celery.done),
        ),
        Row(
            f"{label}, process model vs prefork, PSS per slot (MB)",
            ours_proc.peak_pss_mb / jobs,
            base.peak_pss_mb / jobs,
            f"<= {PROCESS_GOAL_MB:g} MB",
            ours_proc.peak_pss_mb / jobs <= PROCESS_GOAL_MB,
            1,
            celery=prefork.peak_pss_mb / jobs,
        ),
        Row(
            f"{label}, process model vs prefork, all done (s)",
            ours_proc.seconds,
            base.seconds,
            f"< {seconds + 1:g} s",
            ours_proc.seconds < seconds + 1,
            1,
            celery=prefork.seconds,
        ),
        Row(
            f"{label}, process model vs prefork, every job done",
            float(ours_proc.done),
            float(base.done),
            "all",
            ours_proc.done == jobs,
            required=True,
            celery=float(prefork.done),
        ),
    ]
    ctx.results.rows += [
        Row(
            f"{label}, fork model vs prefork, PSS per slot (MB)",
            ours_fork.peak_pss_mb / jobs,
            base.peak_pss_mb / jobs,
            "-",
            None,
            1,
            celery=prefork.peak_pss_mb / jobs,
        ),
        Row(
            f"{label}, fork model, every job done",
            float(ours_fork.done),
            float(base.done),
            "all",
            ours_fork.done == jobs,
            required=True,
            celery=float(prefork.done),
        ),
    ]
    ctx.results.rows.append(_noop_row(ctx))
    ctx.results.details.append(
        f"13. peak RSS of the worker tree (MB, shared pages counted per "
        f"process): ours {ours.peak_rss_mb:.1f}, plain RQ {base.peak_rss_mb:.1f}, "
        f"Celery threads {celery.peak_rss_mb:.1f}"
    )


NOOP_GOAL = 0.5


def _noop_row(ctx: Context) -> Row:
    """No-op throughput of one worker process: one process-model slot
    against Celery prefork with one child (figure 4's drain, same sizes: its
    one-worker drains are reused when figure 4 ran in this run)."""
    jobs = ctx.sizes.scaling
    progress(f"figure 13: no-op drain of {jobs} jobs, process model, one slot")
    ours = drain.measure(ctx, "ours-process", 1, jobs)
    fork = drain.measure(ctx, "ours", 1, jobs)
    base = drain.measure(ctx, "plain", 1, jobs)
    celery = drain.measure(ctx, "celery", 1, jobs)
    ratio = ours.jobs_per_second / celery.jobs_per_second
    ctx.results.details.append(
        f"13. no-op drain of {jobs} jobs, one worker process: process model "
        f"{ours.jobs_per_second:.0f} jobs/s, fork per job "
        f"{fork.jobs_per_second:.0f} jobs/s, plain RQ {base.jobs_per_second:.0f}, "
        f"Celery prefork (one child) {celery.jobs_per_second:.0f}"
    )
    return Row(
        f"13. no-op drain x{jobs:,}, process model, 1 slot (jobs/s)",
        ours.jobs_per_second,
        base.jobs_per_second,
        f">= {NOOP_GOAL:g}x Celery prefork",
        ratio >= NOOP_GOAL,
        celery=celery.jobs_per_second,
    )
