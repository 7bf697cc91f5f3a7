"""Real worker processes draining a queue: ours (`manage.py rqworker`, fork
per job, recording history), plain `rq worker` and `celery worker` on a
no-op function.

The workers are started first and timed only once every one of them is idle
(start-up is reported apart); then all the jobs appear in Redis in one go and
the clock runs until every one is finished (RQ: in the finished or failed
registry; Celery: its result stored). Our history is then recorded (not
timed) and must say `succeeded` for every job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

from django.conf import settings
from django.db import transaction
from rq import Queue

from bench import celery_app, plain, procs
from bench.context import Context
from bench.reset import reset
from bench.stats import rate
from jobs.backend import connect, queueing
from jobs.models import JobRecord
from jobs.processes.recorder import Recorder
from jobs.services import SubmitRequest, job_submit_many

POLL = 0.02
SAMPLE_EVERY = 0.05


@dataclass(frozen=True)
class Drain:
    side: str  # a key of SIDES
    workers: int
    jobs: int
    seconds: float
    done: int  # ours: succeeded in the database; others: succeeded in Redis
    startup: float  # seconds until every worker was idle
    idle_rss_kb: int  # largest VmRSS of a worker's main process just before
    peak_rss_kb: int  # largest VmRSS sample of a worker's main process
    hwm_kb: int  # largest VmHWM (the kernel's peak) of a worker's main process

    @property
    def jobs_per_second(self) -> float:
        return rate(self.jobs, self.seconds)


class RssSampler:
    """VmRSS of some processes every 50 ms, in a thread; keeps the peak."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                self.peak_kb = max(self.peak_kb, procs.status_kb(pid, "VmRSS") or 0)
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> RssSampler:
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


class Side:
    """How one side's workers start, get their jobs and count them done."""

    #: Stop the workers with SIGTERM (else SIGKILL: they are idle by then).
    graceful = True

    def argv(self, name: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def wait_ready(
        self, fleet: procs.Fleet, pids: list[int], names: list[str]
    ) -> float:
        """Seconds until every worker is idle and listening."""
        return procs.wait_idle(fleet, pids)

    def push(self, jobs: int) -> float:
        """Put `jobs` jobs where the workers take them; the perf_counter at
        which they started to appear (preparation is not timed)."""
        raise NotImplementedError

    def finished(self) -> int:
        raise NotImplementedError

    def done(self) -> int:
        raise NotImplementedError


class OurWorkers(Side):
    def argv(self, name: str) -> list[str]:
        return procs.console_worker()

    def push(self, jobs: int) -> float:
        """Records written first; the clock starts before the commit, which
        puts every job into Redis (one MULTI per 1,000)."""
        requests = [
            SubmitRequest(task="demo.echo", payload={"text": str(i)})
            for i in range(jobs)
        ]
        with transaction.atomic():
            job_submit_many(requests=requests)
            start = time.perf_counter()
        return start

    def finished(self) -> int:
        return _registered(queueing.rq_queue("default"))

    def done(self) -> int:
        Recorder(consumer="bench").drain_all()
        return JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()


class OurProcessSlots(OurWorkers):
    """Our worker with one slot of the process model: a long-lived job
    process reused for every job (figure 13)."""

    def argv(self, name: str) -> list[str]:
        return [*super().argv(name), "--concurrency", "1", "--execution", "process"]


class PlainWorkers(Side):
    def argv(self, name: str) -> list[str]:
        return procs.plain_worker()

    def push(self, jobs: int) -> float:
        queue, datas = plain.queue(), plain.prepared(jobs)
        start = time.perf_counter()
        plain.enqueue_many(queue, datas)
        return start

    def finished(self) -> int:
        return _registered(plain.queue())

    def done(self) -> int:
        return int(plain.queue().finished_job_registry.count)


class CeleryWorkers(Side):
    #: An idle Celery worker's warm shutdown still takes seconds (it joins
    #: its pool); nothing is left to finish once the drain is timed.
    graceful = False

    def argv(self, name: str) -> list[str]:
        return procs.celery_worker(name)

    def env(self) -> dict[str, str]:
        return celery_app.urls(settings.REDIS_URL)

    def wait_ready(
        self, fleet: procs.Fleet, pids: list[int], names: list[str]
    ) -> float:
        return celery_app.wait_ready(names, fleet.check_alive)

    def push(self, jobs: int) -> float:
        """Tasks sent first to a list no worker reads; the clock starts at the
        one RENAME that makes them the workers' queue."""
        celery_app.fill(jobs)
        start = time.perf_counter()
        celery_app.release()
        return start

    def finished(self) -> int:
        return celery_app.finished()

    def done(self) -> int:
        return celery_app.succeeded()


SIDES: dict[str, Side] = {
    "ours": OurWorkers(),
    "ours-process": OurProcessSlots(),
    "plain": PlainWorkers(),
    "celery": CeleryWorkers(),
}


def _registered(queue: Queue) -> int:
    """Jobs in the finished and failed registries."""
    keys = [queue.finished_job_registry.key, queue.failed_job_registry.key]
    with connect.connection().pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zcard(key)
        return sum(pipe.execute())


def _wait_done(fleet: procs.Fleet, side: str, jobs: int) -> float:
    """perf_counter when every job is finished (1 job/s at worst)."""
    deadline = time.monotonic() + 60 + jobs
    while time.monotonic() < deadline:
        if SIDES[side].finished() >= jobs:
            return time.perf_counter()
        fleet.check_alive()
        time.sleep(POLL)
    raise TimeoutError(f"{side}: {jobs} jobs not done in time")


def measure(
    ctx: Context, side: str, workers: int, jobs: int, database_url: str = ""
) -> Drain:
    """One drain from a clean slate (cached: the same drain is not rerun).

    With `database_url`, the workers use that database instead of the
    bench's (they only connect to it; the history is still recorded here)."""
    key = (side, workers, jobs, database_url)
    if key in ctx.drains:
        return ctx.drains[key]
    reset()
    how = SIDES[side]
    env = how.env() | ({"DATABASE_URL": database_url} if database_url else {})
    names = [f"{side}-{workers}w-{n}" for n in range(workers)]
    with procs.Fleet(ctx.directory, graceful=how.graceful, quiet=True) as fleet:
        pids = [fleet.start(name, how.argv(name), env) for name in names]
        startup = how.wait_ready(fleet, pids, names)
        idle = max(procs.status_kb(pid, "VmRSS") or 0 for pid in pids)
        with RssSampler(pids) as sampler:
            start = how.push(jobs)
            seconds = _wait_done(fleet, side, jobs) - start
        hwm = max(procs.status_kb(pid, "VmHWM") or 0 for pid in pids)
    found = Drain(
        side=side,
        workers=workers,
        jobs=jobs,
        seconds=seconds,
        done=how.done(),
        startup=startup,
        idle_rss_kb=idle,
        peak_rss_kb=sampler.peak_kb,
        hwm_kb=hwm,
    )
    ctx.drains[key] = found
    return found
