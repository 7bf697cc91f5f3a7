"""UpkeepMixin: what keeps a worker of ours going, under RecordingMixin (which
inherits it): start-up and its scheduler kept alive, registry maintenance,
refusing a job it will not run, and riding out a lost Redis anywhere outside
the dequeue."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import redis
from rq import worker_registration
from rq.job import Job
from rq.queue import Queue
from rq.utils import now as rq_now

from jobs.backend import refusals
from jobs.backend.lease import LeaseLost
from jobs.backend.queueing import ConsoleJob
from jobs.backend.queues import logical_queue
from jobs.backend.recovery import recover_abandoned

#: How often a worker looks whether its scheduler process died (a local
#: check), and how often one whose scheduler never started (another worker
#: holds the lock, RQ's holds it for 60 s past its end) asks Redis for it.
SCHEDULER_CHECK = 1.0


SCHEDULER_RETRY = 15.0

#: Exit codes of a scheduler process stopped on purpose (its stop request
#: ends its loop: 0; or SIGINT, SIGTERM before its handlers were in place):
#: not started again. A crash (an exception: 1; SIGKILL) is.
STOPPED_BY_SIGNAL = (0, -signal.SIGINT, -signal.SIGTERM)

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object


class UpkeepMixin(_WorkerBase):
    """Start-up, scheduler, maintenance and a lost Redis, for any RQ worker
    class (RecordingMixin's base)."""

    #: Set by RecordingMixin.__init__: every lane, paused or not.
    _all_lanes: list[Queue]

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """RQ's start-up (register the worker, subscribe to its commands)
        outside the work loop's error handling: a Redis restart then waits
        for Redis and starts over instead of ending the worker."""
        while True:
            try:
                super().bootstrap(*args, **kwargs)
                return
            except redis.exceptions.ConnectionError as exc:
                self.log.warning(
                    "redis unavailable at start-up; waiting for it",
                    extra={"worker": self.name, "error": str(exc)},
                )
                self._wait_for_redis()
                # A birth registered before the loss would block the retry.
                with self._tolerating_redis_loss("start-up"):
                    self.connection.delete(self.key)

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        """RQ's scheduler takes its locks right after start-up, outside the
        work loop's error handling: a Redis restart at that moment would end
        the worker. Survived instead; the maintenance tasks take the locks
        again later (RQ retries while the scheduler is not running)."""
        self._keeps_scheduler = not (args[0] if args else kwargs.get("burst"))
        with self._tolerating_redis_loss("scheduler start"):
            self._start_careful_scheduler(*args, **kwargs)

    def _start_careful_scheduler(
        self, burst: bool = False, logging_level: str | None = "INFO", *args: Any
    ) -> None:
        """RQ's _start_scheduler with the scheduler that refuses, instead of
        dying on, a job it cannot read (see refusals.CarefulScheduler)."""
        self.scheduler = refusals.CarefulScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level or self.log.level,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    def _keep_scheduler_alive(self) -> None:
        """Start the scheduler process again soon after it died (a Redis error
        ends it, as in a failover or a cut link): RQ only does so with its
        maintenance, every 10 minutes, and retries and delayed jobs wait."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is None or not getattr(self, "_keeps_scheduler", False):
            return
        if getattr(self, "_stop_requested", False):
            return  # shutting down: the scheduler ended with the rest (Ctrl-C)
        process = scheduler._process
        if process is not None and process.is_alive():
            return
        if process is not None and process.exitcode in STOPPED_BY_SIGNAL:
            return  # stopped as the worker is (Ctrl-C reaches the whole group)
        moment = time.monotonic()
        every = SCHEDULER_CHECK if process is not None else SCHEDULER_RETRY
        if moment - getattr(self, "_scheduler_checked_at", 0.0) < every:
            return
        self._scheduler_checked_at = moment
        if process is not None:
            self.log.warning(
                "scheduler process ended (exit code %s); starting it again",
                process.exitcode,
                extra={"worker": self.name},
            )
        with self._tolerating_redis_loss("scheduler restart"):
            scheduler.acquire_locks(auto_start=True)

    def run_maintenance_tasks(self) -> None:
        with self._tolerating_redis_loss("maintenance"):
            super().run_maintenance_tasks()

    def clean_registries(self) -> None:
        """RQ's registry maintenance, except for a dead worker's job: RQ would
        fail it with no retry and no history; recover_abandoned reruns it."""
        recover_abandoned(sorted({logical_queue(q.name) for q in self._all_lanes}))
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                queue.finished_job_registry.cleanup()
                queue.failed_job_registry.cleanup()
                worker_registration.clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = rq_now()  # type: ignore[assignment]  # RQ: None

    def check_for_suspension(self, burst: bool) -> None:
        with self._tolerating_redis_loss("suspension check"):
            super().check_for_suspension(burst)

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """The dequeue begins with this write: a lost Redis must not end the
        worker there either (a pipeline's caller handles its own errors)."""
        if pipeline is not None:
            super().set_state(state, pipeline=pipeline)
            return
        with self._tolerating_redis_loss("state change"):
            super().set_state(state)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """RQ's bookkeeping around a job meeting a lost Redis would end the
        worker. It waits for Redis instead; the job, still in the started
        registry, is recovered like any job whose worker stopped heartbeating.

        A job this worker cannot read or will not run (another client wrote
        it) is refused here, before any fork: it fails alone, for good."""
        if isinstance(job, ConsoleJob) and job.refusal:
            self._refuse(job, queue)
            return
        try:
            super().execute_job(job, queue)
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            LeaseLost,
        ) as exc:
            self._horse_pid = 0  # the job process has ended (or never began)
            self.log.warning(
                "redis unavailable around a job; waiting for it",
                extra={"worker": self.name, "job_id": job.id, "error": str(exc)},
            )
            self._wait_for_redis()
            self._rejoin()

    def _refuse(self, job: ConsoleJob, queue: Queue) -> None:
        host = self.hostname or ""
        with self._tolerating_redis_loss("refusal"), self.connection.pipeline() as pipe:
            refusals.refuse(job, queue, worker=self.name, host=host, pipe=pipe)
            self.increment_failed_job_count(pipeline=pipe)
            pipe.execute()
            refusals.release_dependents(job, queue)

    def _rejoin(self) -> None:
        """Register again if the monitor gave this worker up for lost (it
        deletes a lost worker's entry), so that it is seen working again."""
        with self._tolerating_redis_loss("registration"):
            if not self.connection.sismember(self.redis_workers_keys, self.key):
                self.connection.delete(self.key)
                self.register_birth()

    def _wait_for_redis(self) -> None:
        backoff = 0.1
        while not self._redis_answers():
            time.sleep(backoff)
            backoff = min(1.0, backoff * 2)

    def _redis_answers(self) -> bool:
        try:
            return bool(self.connection.ping())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False  # down, or still loading its data

    @contextmanager
    def _tolerating_redis_loss(self, what: str) -> Iterator[None]:
        """RQ's work loop quits on any error outside the dequeue; a Redis
        restart must not stop the worker, only delay what it was doing."""
        try:
            yield
        except redis.exceptions.ConnectionError as exc:
            self.log.warning(
                "redis unavailable during %s; carrying on",
                what,
                extra={"worker": self.name, "error": str(exc)},
            )
            time.sleep(0.2)
