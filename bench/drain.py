"""Real worker processes draining a queue: ours (`manage.py rqworker`, fork
per job, recording history) and plain `rq worker` on a no-op function.

The workers are started first and timed only once every one of them is idle
in Redis (start-up is reported apart); then all the jobs appear in Redis in
one go and the clock runs until the finished and failed registries hold them
all. Our history is then recorded (not timed) and must say `succeeded` for
every job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType

from django.db import transaction

from bench import plain, procs
from bench.context import Context
from bench.reset import reset
from bench.stats import rate
from jobs import queueing
from jobs.models import JobRecord
from jobs.recorder import Recorder
from jobs.services import SubmitRequest, job_submit_many

POLL = 0.02
SAMPLE_EVERY = 0.05


@dataclass(frozen=True)
class Drain:
    side: str  # "ours" or "plain"
    workers: int
    jobs: int
    seconds: float
    done: int  # ours: succeeded in the database; plain: finished in Redis
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


def _push_ours(jobs: int) -> float:
    """Records written first; the clock starts before the commit, which puts
    every job into Redis (one MULTI per 1,000)."""
    requests = [
        SubmitRequest(task="demo.echo", payload={"text": str(i)}) for i in range(jobs)
    ]
    with transaction.atomic():
        job_submit_many(requests=requests)
        start = time.perf_counter()
    return start


def _push_plain(jobs: int) -> float:
    queue, datas = plain.queue(), plain.prepared(jobs)
    start = time.perf_counter()
    plain.enqueue_many(queue, datas)
    return start


def _registries(side: str) -> list[str]:
    queue = plain.queue() if side == "plain" else queueing.rq_queue("default")
    return [queue.finished_job_registry.key, queue.failed_job_registry.key]


def _wait_done(fleet: procs.Fleet, side: str, jobs: int) -> float:
    """perf_counter when the registries hold every job (1 job/s at worst)."""
    client, keys = queueing.connection(), _registries(side)
    deadline = time.monotonic() + 60 + jobs
    while time.monotonic() < deadline:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcard(key)
            if sum(pipe.execute()) >= jobs:
                return time.perf_counter()
        fleet.check_alive()
        time.sleep(POLL)
    raise TimeoutError(f"{side}: {jobs} jobs not done in time")


def _done(side: str) -> int:
    if side == "plain":
        return int(plain.queue().finished_job_registry.count)
    Recorder(consumer="bench").drain_all()
    return JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()


def measure(ctx: Context, side: str, workers: int, jobs: int) -> Drain:
    """One drain from a clean slate (cached: the same drain is not rerun)."""
    key = (side, workers, jobs)
    if key in ctx.drains:
        return ctx.drains[key]
    reset()
    argv = procs.console_worker() if side == "ours" else procs.plain_worker()
    with procs.Fleet(ctx.directory) as fleet:
        pids = [fleet.start(f"{side}-{workers}w-{n}", argv) for n in range(workers)]
        startup = procs.wait_idle(fleet, pids)
        idle = max(procs.status_kb(pid, "VmRSS") or 0 for pid in pids)
        with RssSampler(pids) as sampler:
            start = _push_ours(jobs) if side == "ours" else _push_plain(jobs)
            seconds = _wait_done(fleet, side, jobs) - start
        hwm = max(procs.status_kb(pid, "VmHWM") or 0 for pid in pids)
    found = Drain(
        side=side,
        workers=workers,
        jobs=jobs,
        seconds=seconds,
        done=_done(side),
        startup=startup,
        idle_rss_kb=idle,
        peak_rss_kb=sampler.peak_kb,
        hwm_kb=hwm,
    )
    ctx.drains[key] = found
    return found
