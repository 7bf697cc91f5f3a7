"""The worker classes: RQ workers that record every attempt and retry with backoff.

Recording rides on pipelines RQ already sends: the "started" event goes out
with the job's preparation (see ConsoleJob.prepare_for_execution) and the
outcome with the execution clean-up, so a job costs no extra round trip.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis
from django.db import connections as db_connections
from rq import worker_registration
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.worker import SimpleWorker, Worker, WorkerStatus

from jobs import events, stats
from jobs.backend import jobhash, queueing, refusals
from jobs.backend.queueing import (
    ConsoleJob,
    lanes,
    logical_queue,
    paused_queues,
    rq_queue,
    whole_second_after,
)
from jobs.registry import RetryPolicy

log = logging.getLogger("jobs.worker")
#: Results larger than this are summarised in the history, not copied whole.
RESULT_SUMMARY_BYTES = 8192
#: Longest a worker blocks on Redis before re-reading which queues are paused.
DEQUEUE_BLOCK = 0.5
PAUSE_REFRESH = 0.25
#: Pops the first job of the first non-empty list among KEYS, in order.
POP_FIRST = """
for _, key in ipairs(KEYS) do
  local job_id = redis.call('LPOP', key)
  if job_id then return {key, job_id} end
end
return false
"""
#: Longest the command channel's thread sleeps (bounds a worker's exit).
PUBSUB_WAKE = 1.0
#: How often a worker looks whether its scheduler process died (a local
#: check), and how often one whose scheduler never started (another worker
#: holds the lock, RQ's holds it for 60 s past its end) asks Redis for it.
SCHEDULER_CHECK = 1.0
SCHEDULER_RETRY = 15.0
#: Seconds an idle worker's entry outlives its last heartbeat.
WORKER_TTL = 20
#: A running job's worker heartbeats this often; a job whose heartbeat is
#: older than interval + grace belongs to a dead worker and is recovered.
JOB_MONITORING_INTERVAL = 3
HEARTBEAT_GRACE = 12
#: A worker that could not heartbeat stops its job this long before its lease
#: ends (the monitor's clock and ours, and its recovery period, 2 s).
LEASE_MARGIN = 3


#: Resident size is read at most this often (every heartbeat asks for it).
RSS_EVERY = 1.0
_rss: list[float] = [0.0, 0.0]  # [read at (monotonic), kB]


def resident_kb() -> int:
    """Resident set size of this process (not the peak), at most RSS_EVERY
    seconds old."""
    moment = time.monotonic()
    if moment - _rss[0] >= RSS_EVERY or not _rss[1]:
        try:
            with open("/proc/self/statm") as statm:
                pages = int(statm.read().split()[1])
            _rss[:] = [moment, pages * os.sysconf("SC_PAGE_SIZE") // 1024]
        except (OSError, ValueError, IndexError):
            return 0
    return int(_rss[1])


@cache
def _libc() -> Any:
    """glibc, loaded once in the worker (job processes inherit it); None
    where there is none."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (the worker) dies, so
    a job never runs on without the worker that heartbeats it."""
    parent = os.getppid()
    libc = _libc()
    if libc is None:  # pragma: no cover - not Linux
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1
#: Database connections inherited across fork, kept referenced (never closed,
#: never garbage-collected) so the job process cannot send a disconnect on
#: the parent's socket; the job opens its own.
_inherited_db: list[Any] = []


def forget_inherited_db_connections() -> None:
    for conn in db_connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited_db.append(conn.connection)
            conn.connection = None


class LeaseLost(Exception):  # noqa: N818 - a lease is lost, not an error of ours
    """A running job's heartbeats stopped reaching Redis for its whole lease:
    the monitor takes it back, so this worker must stop running it. Not a
    redis error, so that redis-py's retries never swallow it."""


@dataclass
class Failure:
    outcome: events.Kind  # FAILED or LOST
    exc_type: str
    message: str
    traceback: str
    names: list[str] = field(default_factory=list)
    retry_at: float | None = None
    delay: float | None = None


#: The exception type an attempt stopped by an operator's cancel is recorded with.
CANCELED_TYPE = "JobCanceled"


def canceled_failure(by: str, detail: str = "") -> Failure:
    """The outcome of an attempt stopped by an operator's cancel."""
    return Failure(
        outcome=events.Kind.FAILED,
        exc_type=CANCELED_TYPE,
        message=f"stopped: canceled by {by}",
        traceback=detail,
    )


def exception_names(exc_type: type[BaseException]) -> list[str]:
    names: list[str] = []
    for cls in exc_type.__mro__:
        names.extend((cls.__name__, f"{cls.__module__}.{cls.__qualname__}"))
    return names


def expand_lanes(queues: list[Queue | str]) -> list[str]:
    """Logical queue names to lane names: every high lane first, then normal,
    then low. A name that already is a lane is kept as it is."""
    names = [q.name if isinstance(q, Queue) else q for q in queues]
    tiers: list[list[str]] = [[], [], []]
    for name in names:
        if name.endswith((":high", ":low")):
            tiers[0 if name.endswith(":high") else 2].append(name)
            continue
        for tier, lane_name in zip(tiers, lanes(name), strict=True):
            tier.append(lane_name)
    ordered = [name for tier in tiers for name in tier]
    return list(dict.fromkeys(ordered))


def summarise(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= RESULT_SUMMARY_BYTES:
        return json.loads(text)
    return {"truncated": True, "preview": text[:RESULT_SUMMARY_BYTES]}


if TYPE_CHECKING:
    from rq.worker import BaseWorker as _WorkerBase
else:
    _WorkerBase = object


class RecordingMixin(_WorkerBase):
    """Pause-aware dequeue, attempt recording and backoff retries, for any RQ
    worker class."""

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        given = queues if isinstance(queues, list | tuple) else [queues]
        client = queueing.worker_connection(
            kwargs.get("connection") or getattr(given[0], "connection", None)
        )
        kwargs["connection"] = client
        kwargs["serializer"] = JSONSerializer  # never pickle, whatever the CLI says
        kwargs["job_class"] = ConsoleJob
        kwargs.pop("queue_class", None)
        if not kwargs.get("name"):
            kwargs["name"] = (
                f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(2)}"
            )
        # A dead idle worker's entry expires quickly; django-rq passes 420.
        kwargs["worker_ttl"] = WORKER_TTL
        queueing.wait_for_redis(client)
        lane_queues = [rq_queue(name, client) for name in expand_lanes(list(given))]
        super().__init__(lane_queues, *args, **kwargs)
        self._failures: dict[str, Failure] = {}
        self._all_lanes: list[Queue] = list(self._ordered_queues)
        self._paused: set[str] = set()
        self._paused_read_at = 0.0
        self._pop_first = self.connection.register_script(POP_FIRST)
        self._rss_sent_at = -RSS_EVERY

    # -- pause-aware dequeue --------------------------------------------------

    def active_lanes(self) -> list[Queue]:
        """The lanes of queues that are not paused (re-read at most every
        PAUSE_REFRESH seconds, so a pause takes effect within a second)."""
        moment = time.monotonic()
        if moment - self._paused_read_at >= PAUSE_REFRESH:
            self._paused = paused_queues()
            self._paused_read_at = moment
        return [q for q in self._all_lanes if logical_queue(q.name) not in self._paused]

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue, but blocking at most DEQUEUE_BLOCK seconds at a time
        and only on unpaused lanes, and riding out a lost Redis connection."""
        self.set_state(WorkerStatus.IDLE)
        idle_since = time.monotonic()
        backoff = 0.1
        while True:
            try:
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                else:
                    self._keep_scheduler_alive()
                lanes_now = self.active_lanes()
                if timeout is None:  # burst: take what is there, or stop
                    return self._dequeue_now(lanes_now) if lanes_now else None
                if lanes_now:
                    result = self.queue_class.dequeue_any(
                        lanes_now,
                        DEQUEUE_BLOCK,  # type: ignore[arg-type]
                        connection=self.connection,
                        job_class=self.job_class,
                        serializer=self.serializer,
                        death_penalty_class=self.death_penalty_class,
                    )
                    if result is not None:
                        return result
                if not lanes_now:
                    time.sleep(DEQUEUE_BLOCK)
            except DequeueTimeout:
                pass
            except redis.exceptions.ConnectionError as exc:
                self.log.warning(
                    "redis unavailable, retrying",
                    extra={"worker": self.name, "error": str(exc), "retry_in": backoff},
                )
                time.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            backoff = 0.1
            if max_idle_time and time.monotonic() - idle_since > max_idle_time:
                return None

    def _dequeue_now(self, lanes_now: list[Queue]) -> tuple[Job, Queue] | None:
        """The first job of the first lane that has one, without blocking, in
        one round trip (RQ pops the lanes one by one: a round trip per empty
        lane in front, for every job)."""
        by_key = {lane.key: lane for lane in lanes_now}
        while True:
            found = self._pop_first(keys=list(by_key))
            if found is None:
                return None
            key, job_id = (part.decode() for part in found)
            try:
                job = self.job_class.fetch(
                    job_id, connection=self.connection, serializer=self.serializer
                )
            except NoSuchJobError:
                continue  # gone meanwhile (deleted): RQ skips it too
            return job, by_key[key]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat plus, once a second, this process's resident memory,
        in one round trip (RQ beats several times a job). A lost connection is
        survived: the next heartbeat catches up."""
        own = pipeline is None
        pipe = self.connection.pipeline() if own else pipeline
        super().heartbeat(timeout, pipeline=pipe)
        moment = time.monotonic()
        if moment - self._rss_sent_at >= RSS_EVERY:
            pipe.hset(self.key, "rss_kb", str(resident_kb()))
            self._rss_sent_at = moment
        if own:
            with self._tolerating_redis_loss("heartbeat"):
                pipe.execute()

    def subscribe(self) -> None:
        """RQ's subscription to its command channel, but with a thread that
        wakes every PUBSUB_WAKE seconds rather than RQ's 60: redis-py 8's
        PubSubWorkerThread.stop() waits for the thread, which would hold every
        worker's exit (and every burst) for up to a minute."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_WAKE,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )

    def unsubscribe(self) -> None:
        """RQ's, except that the thread closes its connection itself as it
        ends: RQ closes it too, which races the thread now that it wakes."""
        if self.pubsub_thread:
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop()
            self.pubsub_thread.join(timeout=PUBSUB_WAKE * 5)

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
        process = scheduler._process
        if process is not None and process.is_alive():
            return
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

    # -- failures -----------------------------------------------------------

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        exc_type: type[BaseException] = exc_info[0]
        exc_value: BaseException = exc_info[1]
        tb: TracebackType | None = exc_info[2]
        self._failures[job.id] = Failure(
            outcome=events.Kind.FAILED,
            exc_type=exc_type.__name__,
            message=str(exc_value)[:4000],
            traceback="".join(traceback.format_exception(exc_type, exc_value, tb)),
            names=exception_names(exc_type),
        )
        super().handle_exception(job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
    ) -> None:
        failure = self._failures.get(job.id)
        if failure is None:
            # No exception reached us: the job's process died (killed, OOM,
            # segfault). The horse updated the attempt count, so re-read it.
            job.meta = job.get_meta(refresh=True)
            failure = Failure(
                outcome=events.Kind.LOST,
                exc_type="WorkerLost",
                message="worker lost: " + (exc_string.strip() or "died"),
                traceback=exc_string,
            )
            self._failures[job.id] = failure
        attempt = int(job.meta.get("attempt", 1) or 1)
        this_round = attempt - int(job.meta.get("attempt_offset", 0) or 0)
        policy = RetryPolicy.from_dict(job.meta.get("policy") or {})
        stopped = self._stopped_job_id == job.id
        # An operator canceled it while it ran (the stop may have lost the race
        # with the job's own failure): never retried, recorded as canceled.
        canceled_by = queueing.cancel_requested(job.id, self.connection)
        if canceled_by is not None:
            stopped = True
            failure = self._failures[job.id] = canceled_failure(canceled_by, exc_string)
        if not stopped and policy.allows_retry(this_round, failure.names):
            now = time.time()
            failure.delay = (
                0.0 if failure.outcome == events.Kind.LOST else policy.delay(this_round)
            )
            due = whole_second_after(now + failure.delay) if failure.delay else now
            job.retries_left = 1
            job.retry_intervals = [due - now]  # type: ignore[list-item]
            failure.retry_at = due
        else:
            job.retries_left = 0
        try:
            super().handle_job_failure(
                job,
                queue,
                started_job_registry=started_job_registry,
                exc_string=exc_string,
            )
        finally:
            self._failures.pop(job.id, None)

    # -- the outcome event --------------------------------------------------

    def cleanup_execution(self, job: Job, pipeline: Any) -> None:
        """The attempt's outcome event and counters ride on RQ's own clean-up
        pipeline (success and failure both pass through here)."""
        super().cleanup_execution(job, pipeline)
        started = job.started_at.timestamp() if job.started_at else None
        ended = job.ended_at.timestamp() if job.ended_at else time.time()
        duration = (ended - started) if started else None
        common: dict[str, Any] = {
            "attempt": int(job.meta.get("attempt", 1) or 1),
            "worker": self.name,
            "host": self.hostname,
            "started": started,
            "duration": duration,
        }
        failure = self._failures.get(job.id)
        if failure is None and job.get_status(refresh=False) == JobStatus.FINISHED:
            outcome = "processed"
            event = events.fields(
                events.Kind.SUCCEEDED,
                job.id,
                at=ended,
                **common,
                result=summarise(job._result),
            )
        else:
            failure = failure or Failure(
                events.Kind.FAILED, "JobStopped", "stopped", ""
            )
            outcome = "failed" if failure.retry_at is not None else "dead"
            event = events.fields(
                failure.outcome,
                job.id,
                at=ended,
                **common,
                exc_type=failure.exc_type,
                message=failure.message,
                traceback=failure.traceback[-20000:],
                retry_at=failure.retry_at,
                delay=failure.delay,
            )
        pipeline.xadd(events.STREAM, event)
        log.log(
            logging.INFO if outcome == "processed" else logging.WARNING,
            {
                "processed": "job succeeded",
                "failed": "job failed; retry scheduled",
                "dead": "job dead-lettered",
            }[outcome],
            extra={
                "job_id": job.id,
                "task": job.meta.get("task"),
                "queue": logical_queue(job.origin),
                "attempt": common["attempt"],
                "worker": self.name,
                "duration": duration,
                "error": failure.message if failure else None,
            },
        )
        stats.count_outcome(
            pipeline,
            queue=logical_queue(job.origin),
            task=str(job.meta.get("task", "")),
            outcome=outcome,
            duration=duration,
            at=ended,
        )


def prepare_to_fork() -> None:
    """Make this process a good parent for job processes.

    The task runner is imported here, once: RQ would otherwise import it
    afresh in every forked job (about 2 ms a job). Then what start-up freed
    is handed back, and the objects that remain are taken out of the garbage
    collector's reach: a collection in a job would otherwise walk, and so
    copy page by page, the whole inherited heap.
    """
    global _prepared_in
    if _prepared_in is not None:
        # An ancestor (the pool's parent) froze the heap before it forked us:
        # collecting or trimming again would write to, and so un-share, the
        # pages it left shared. Only what this process made since is frozen.
        gc.freeze()
        return
    importlib.import_module(queueing.RUNNER.rpartition(".")[0])
    gc.collect()
    gc.freeze()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    _prepared_in = os.getpid()


#: The pid of the process that ran prepare_to_fork (inherited by its forks).
_prepared_in: int | None = None


class ConsoleWorker(RecordingMixin, Worker):
    """The default worker: one forked process per job (isolation)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["job_monitoring_interval"] = JOB_MONITORING_INTERVAL
        super().__init__(*args, **kwargs)

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        prepare_to_fork()

    def get_heartbeat_ttl(self, job: Job) -> int:
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return int(min(remaining, self.job_monitoring_interval)) + HEARTBEAT_GRACE
        return self.job_monitoring_interval + HEARTBEAT_GRACE

    # -- the lease on a running job (fencing) ---------------------------------
    # The monitor takes a job back once its heartbeat lapses (recover_abandoned)
    # and runs it on another worker. A worker cut off from Redis (its host's
    # link down) cannot tell, so it stops its own job process before its
    # lease ends: the job then runs on one host at a time, never on two.

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        self._lease: Lease | None = None  # none in the job process
        super().fork_work_horse(job, queue)
        ttl = self.get_heartbeat_ttl(job)
        self._lease = Lease(self.horse_pid, time.monotonic() + ttl)

    def maintain_heartbeats(self, job: Job) -> None:
        """RQ's heartbeat, each one that gets through renewing the lease."""
        self._check_lease(job)
        sent = time.monotonic()
        try:
            super().maintain_heartbeats(job)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self._check_lease(job)
            self.log.warning(
                "heartbeat failed; the job runs on",
                extra={"worker": self.name, "job_id": job.id},
            )
            return
        if self._lease is not None:
            self._lease.renew(sent + self.get_heartbeat_ttl(job))
        self._keep_scheduler_alive()  # a long job must not hold up retries

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
    ) -> None:
        """Not for a job process the lease stopped: the monitor took the job
        back (and may run it elsewhere); putting it back too would run it
        twice."""
        self._check_lease(job)
        super().handle_job_failure(job, queue, started_job_registry, exc_string)

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            lease, self._lease = getattr(self, "_lease", None), None
            if lease is not None:
                lease.end()

    def _check_lease(self, job: Job) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None and lease.lost:
            self.log.warning(
                "lease on the job lost (no heartbeat reached redis); its process"
                " was stopped: the monitor runs it again",
                extra={"worker": self.name, "job_id": job.id},
            )
            raise LeaseLost(f"job {job.id}: no heartbeat got through")

    # -- in the job process: its end written through a failover -------------

    def handle_execution_ended(
        self, job: Job, queue: Queue, heartbeat_ttl: int
    ) -> None:
        if job.get_status(refresh=False) == JobStatus.FAILED:
            # A failed attempt (its start may not even have been written) is
            # not waited for: this process ends and the attempt is recovered
            # as lost and run again at once, with no retry delay for RQ's
            # scheduler to honour (a failover ends the scheduler's process).
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        _until_redis_answers(super().handle_execution_ended, job, queue, heartbeat_ttl)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any
    ) -> None:
        _until_redis_answers(
            super().handle_job_success, job, queue, started_job_registry
        )

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        die_with_parent()
        forget_inherited_db_connections()
        queueing.mark_job_process()
        super().main_work_horse(job, queue)


class Lease:
    """A worker's hold on its running job: unless renewed (a heartbeat that
    got through), the job process is killed LEASE_MARGIN seconds before the
    monitor would call it lost. A timer thread, because the worker's main
    thread may be stuck in any Redis call (redis-py retries a lost
    connection for longer than the lease)."""

    def __init__(self, pid: int, until: float) -> None:
        self.pid = pid
        self.lost = False
        self._timer: threading.Timer | None = None
        self.renew(until)

    def renew(self, until: float) -> None:
        self.end()
        wait = max(0.0, until - LEASE_MARGIN - time.monotonic())
        self._timer = threading.Timer(wait, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        self.lost = True
        log.warning(
            "lease ended; stopping the job process", extra={"job_process": self.pid}
        )
        with contextlib.suppress(ProcessLookupError):
            # The job process leads its own group (RQ's fork); never ours.
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


def _until_redis_answers(write: Callable[..., None], *args: Any) -> None:
    """A job that did its work as the Redis primary died must not lose its
    outcome, or it runs again: the write is tried until the promoted replica
    answers. Never past the job's lease: by then the worker has stopped this
    process (maintain_heartbeats) and the job runs elsewhere."""
    deadline = time.monotonic() + JOB_MONITORING_INTERVAL + HEARTBEAT_GRACE
    backoff = 0.1
    while True:
        try:
            write(*args)
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if time.monotonic() + backoff >= deadline:
                raise
            log.warning(
                "redis unavailable as a job ends; trying again",
                extra={"error": str(exc), "retry_in": backoff},
            )
            time.sleep(backoff)
            backoff = min(1.0, backoff * 2)


class ConsoleSimpleWorker(RecordingMixin, SimpleWorker):
    """Runs jobs in the worker's own process: faster, no isolation."""


# -- recovery of jobs whose worker died --------------------------------------
#
# RQ has its own clean-up for a dead worker's job (StartedJobRegistry.cleanup,
# run by every RQ worker at start-up and every 10 minutes, and by anything
# that reads `registry.count`, such as `rq info`): it fails the job as
# abandoned, with no retry (our jobs carry no RQ retry) and no event, so the
# history would say "started" forever. Our workers run recover_abandoned in
# its place; a job RQ failed anyway is adopted by the monitor's stranded
# sweep (jobs/services/reconcile.py).

#: How RQ's clean-up words the failure it records for an abandoned job.
RQ_ABANDONED = "due to AbandonedJobError"


@dataclass(frozen=True)
class Recovered:
    job_id: str
    worker: str
    requeued: bool


def recover_abandoned(queues: list[str], now: float | None = None) -> list[Recovered]:
    """Jobs whose worker stopped heartbeating (SIGKILL, OOM, lost host) run
    again at once if attempts remain, else go dead with "worker lost".

    Each started-registry entry (one per execution) is claimed with SET NX,
    so two monitors, or a monitor and a worker, never recover it twice.
    """
    client = queueing.connection()
    moment = time.time() if now is None else now
    recovered: list[Recovered] = []
    for lane_name in [lane for q in queues for lane in lanes(q)]:
        queue = rq_queue(lane_name, client)
        key = queue.started_job_registry.key
        for raw in client.zrangebyscore(key, 0, moment):
            entry = jobhash.text(raw)
            if not client.set(f"console:recovering:{entry}", 1, nx=True, ex=300):
                continue
            try:
                job = queueing.fetch(entry.split(":")[0], client)
            except Exception:  # noqa: BLE001 - the job is gone: only the entry is left
                client.zrem(key, entry)
                continue
            if job.refusal:  # unreadable now: fails alone, never run again
                with client.pipeline() as pipe:
                    pipe.zrem(key, entry)
                    refusals.refuse(job, queue, worker="recovery", pipe=pipe)
                    pipe.execute()
                continue
            if moved_on(client, job, key, entry, moment):
                client.zrem(key, entry)  # only a stale entry: nothing to run
                continue
            recovered.append(_recover(queue, job, key, entry))
    return recovered


#: A job in one of these went on without the execution that left the entry.
MOVED_ON = (
    JobStatus.FINISHED,
    JobStatus.FAILED,
    JobStatus.STOPPED,
    JobStatus.CANCELED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
)


def moved_on(client: Any, job: Job, key: str, entry: str, now: float) -> bool:
    """Has the job gone on without the execution of this lapsed entry?

    After a failover the promoted replica may hold the entry of a worker
    that took the job as the primary died and never ran it: the stranded
    sweep puts such a job back and it runs elsewhere, while the entry lapses
    only later. Recovering it then would run a job a second time that
    finished, waits in its queue, or runs under another execution."""
    status = job.get_status(refresh=False)
    if status in MOVED_ON:
        return True
    if status == JobStatus.QUEUED:
        return client.lpos(rq_queue(job.origin, client).key, job.id) is not None
    # Started: another execution of it heartbeats (its entry has not lapsed).
    others = client.zrangebyscore(key, now, "+inf")
    return any(jobhash.text(other).startswith(f"{job.id}:") for other in others)


def abandoned_by_rq(job_ids: list[str]) -> list[str]:
    """The jobs among these that RQ's own clean-up failed as abandoned."""
    client = queueing.connection()
    return [job_id for job_id in job_ids if _rq_abandoned(client, job_id)]


def adopt_abandoned(job_ids: list[str]) -> list[Recovered]:
    """Recover jobs RQ's clean-up failed as abandoned, as if we had found them
    first. Claimed per RQ failure record; a job that already waits in its
    queue or runs (we recovered it too, racing RQ) is left alone."""
    client = queueing.connection()
    recovered: list[Recovered] = []
    for job_id in job_ids:
        found = _rq_abandoned(client, job_id)
        if found is None:
            continue
        job, failure_id = found
        queue = rq_queue(job.origin, client)
        busy = client.lpos(queue.key, job.id) is not None or any(
            jobhash.text(entry).startswith(f"{job.id}:")
            for entry in client.zrange(queue.started_job_registry.key, 0, -1)
        )
        claim = f"console:recovering:{job.id}:{failure_id}"
        if busy or not client.set(claim, 1, nx=True, ex=300):
            continue
        key = queue.failed_job_registry.key
        recovered.append(_recover(queue, job, key, job.id))
    return recovered


def _rq_abandoned(client: Any, job_id: str) -> tuple[Job, str] | None:
    """The job and RQ's failure record, if RQ failed this job as abandoned."""
    try:
        job = ConsoleJob.fetch(job_id, connection=client)
    except Exception:  # noqa: BLE001 - gone from Redis: nothing to adopt
        return None
    if job.get_status(refresh=False) != JobStatus.FAILED:
        return None
    latest = job.latest_result()
    if latest is None or RQ_ABANDONED not in (latest.exc_string or ""):
        return None
    return job, str(latest.id)


def _recover(queue: Queue, job: Job, registry_key: str, entry: str) -> Recovered:
    client: Any = queue.connection
    attempt = int(job.meta.get("attempt", 1) or 1)
    this_round = attempt - int(job.meta.get("attempt_offset", 0) or 0)
    policy = RetryPolicy.from_dict(job.meta.get("policy") or {})
    lost_worker = job.worker_name or "unknown"
    message = f"worker lost: {lost_worker} stopped heartbeating"
    # Canceled by an operator while it ran: never run again.
    canceled_by = queueing.cancel_requested(job.id, client)
    requeue = canceled_by is None and policy.allows_retry(this_round, [])
    kind, exc_type = events.Kind.LOST, "WorkerLost"
    if canceled_by is not None:
        kind, exc_type = events.Kind.FAILED, CANCELED_TYPE
        message = f"stopped: canceled by {canceled_by}; {message}"
    now = time.time()
    with client.pipeline() as pipe:
        pipe.zrem(registry_key, entry)
        # The lost execution is no longer "executing" (queueing.executing).
        pipe.zrem(f"rq:executions:{job.id}", entry.partition(":")[2])
        if requeue:
            job.retries_left = 1
            job.retry_intervals = [0]
            job.retry(queue, pipe)
            # RQ's clean-up may have failed it too, racing us: not dead after all.
            pipe.zrem(queue.failed_job_registry.key, job.id)
        else:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job._handle_failure(message, pipe, worker_name=lost_worker)
        pipe.xadd(
            events.STREAM,
            events.fields(
                kind,
                job.id,
                at=now,
                attempt=attempt,
                worker=lost_worker,
                exc_type=exc_type,
                message=message,
                traceback="",
                retry_at=now if requeue else None,
                delay=0.0 if requeue else None,
            ),
        )
        stats.count_outcome(
            pipe,
            queue=logical_queue(job.origin),
            task=str(job.meta.get("task", "")),
            outcome="failed" if requeue else "dead",
            duration=None,
            at=now,
        )
        # The dead worker's entry goes too, rather than lingering until its TTL.
        pipe.delete(f"rq:worker:{lost_worker}")
        pipe.srem("rq:workers", f"rq:worker:{lost_worker}")
        pipe.execute()
    if not requeue:
        queue.enqueue_dependents(job)
    log.warning(
        "recovered a job from a lost worker",
        extra={"job_id": job.id, "worker": lost_worker, "requeued": requeue},
    )
    return Recovered(job.id, lost_worker, requeue)
