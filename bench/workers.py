"""Figure 3: draining no-op jobs with our workers and with plain RQ's.

Our side records everything: events in the worker's pipelines, then the
recorder writes them to SQL, and every job must end up `succeeded` in the
database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker, SimpleWorker, Worker

from bench import plain
from bench.reset import reset
from bench.stats import rate, timed
from jobs.backend import connect
from jobs.backend.workers import ConsoleSimpleWorker, ConsoleWorker
from jobs.models import JobRecord
from jobs.processes.recorder import Recorder
from jobs.services import SubmitRequest, job_submit_many

GOAL_RATIO = 0.9
#: A no-op job's stream entries: enqueued, started, succeeded.
EVENTS_PER_JOB = 3
#: Each of our classes against the plain RQ class it extends.
PAIRS: tuple[tuple[str, type[BaseWorker], type[BaseWorker]], ...] = (
    ("SimpleWorker", ConsoleSimpleWorker, SimpleWorker),
    ("Worker (fork per job)", ConsoleWorker, Worker),
)


@dataclass(frozen=True)
class Drained:
    jobs: int
    seconds: float
    succeeded: int

    @property
    def jobs_per_second(self) -> float:
        return rate(self.jobs, self.seconds)


@dataclass(frozen=True)
class Recorded:
    events: int
    seconds: float
    succeeded: int
    jobs: int
    #: CPU time (this process's, user + system) of the drain.
    cpu_seconds: float = 0.0
    #: Jobs whose history each drain wrote in one transaction.
    jobs_per_batch: int = 0

    @property
    def events_per_second(self) -> float:
        return rate(self.events, self.seconds)

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu_seconds / self.jobs if self.jobs else 0.0


def _burst(worker: BaseWorker) -> float:
    """Seconds from the start of a burst to its last job done. RQ's teardown
    then waits up to 1 s for its pubsub thread to stop, on both sides alike:
    that is not work, and over short rounds it would swamp the figure."""
    connections.close_all()  # never carry a database connection across fork
    done: list[float] = []
    unsubscribe = worker.unsubscribe

    def stop_listening() -> None:
        done.append(time.perf_counter())
        unsubscribe()

    worker.unsubscribe = stop_listening  # type: ignore[method-assign]
    start = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    return done[0] - start


def _submit(count: int) -> None:
    requests = [
        SubmitRequest(task="demo.echo", payload={"text": str(i)}) for i in range(count)
    ]
    job_submit_many(requests=requests)


def _succeeded() -> int:
    return JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()


def ours(worker_class: type[BaseWorker], count: int) -> Drained:
    """Timed: the burst only. Then the history is recorded and checked."""
    reset()
    _submit(count)
    worker: Any = worker_class(["default"], connection=connect.connection())
    seconds = _burst(worker)
    Recorder(consumer="bench").drain_all()
    return Drained(count, seconds, _succeeded())


def baseline(worker_class: type[BaseWorker], count: int) -> Drained:
    reset()
    queue = plain.queue()
    plain.enqueue_many(queue, plain.prepared(count))
    worker = worker_class(
        [queue], connection=queue.connection, serializer=JSONSerializer
    )
    seconds = _burst(worker)
    return Drained(count, seconds, queue.finished_job_registry.count)


def recorder(count: int, jobs_per_batch: int = 0) -> Recorded:
    """Timed: draining `count` jobs' whole history (enqueued, started,
    succeeded), left in the stream by a simple worker, with the recorder's
    own batches (Recorder().drain_all()) or `jobs_per_batch` jobs' events a
    batch (a monitor keeping up with busy workers reads a few at a time).
    Wall and CPU time."""
    reset()
    _submit(count)
    _burst(ConsoleSimpleWorker(["default"], connection=connect.connection()))
    rec = Recorder(consumer="bench")
    rec.backlog()  # the group exists before the clock starts

    def drain() -> int:
        if not jobs_per_batch:
            return rec.drain_all()
        total = 0
        while applied := rec.drain(count=EVENTS_PER_JOB * jobs_per_batch):
            total += applied
        return total

    cpu = time.process_time()
    events, seconds = timed(drain)
    cpu = time.process_time() - cpu
    return Recorded(events, seconds, _succeeded(), count, cpu, jobs_per_batch)


def combine(rounds: Sequence[Drained]) -> Drained:
    """Several rounds as one: total jobs over total time."""
    return Drained(
        jobs=sum(r.jobs for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        succeeded=sum(r.succeeded for r in rounds),
    )


def compare(
    console_class: type[BaseWorker], rq_class: type[BaseWorker], count: int, rounds: int
) -> tuple[list[Drained], list[Drained]]:
    """`count` jobs per side, in short rounds that alternate plain RQ and ours,
    so a noisy machine's slow spells hit both sides alike."""
    size, extra = divmod(count, rounds)
    ours_rounds: list[Drained] = []
    plain_rounds: list[Drained] = []
    for number in range(rounds):
        jobs = size + (1 if number < extra else 0)
        plain_rounds.append(baseline(rq_class, jobs))
        ours_rounds.append(ours(console_class, jobs))
    return ours_rounds, plain_rounds
