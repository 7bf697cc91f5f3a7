"""RecordingMixin: what every worker class of ours adds to RQ's: a pause-aware
dequeue, attempt recording and backoff retries, on UpkeepMixin (upkeep.py:
start-up, a scheduler kept alive, riding out a lost Redis). Recording rides on
pipelines RQ already sends: the "started" event goes out with the job's
preparation (see ConsoleJob.prepare_for_execution) and the outcome with the
execution clean-up, so a job costs no extra round trip."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import traceback
from types import TracebackType
from typing import Any

import redis
from rq.exceptions import DequeueTimeout
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from jobs import events, stats
from jobs.backend import cancels, connect
from jobs.backend.forking import (
    RSS_EVERY,
    resident_kb,
)
from jobs.backend.outcomes import (
    Failure,
    canceled_failure,
    exception_names,
    summarise,
)
from jobs.backend.queueing import ConsoleJob, rq_queue, whole_second_after
from jobs.backend.queues import lanes, logical_queue, paused_queues
from jobs.backend.upkeep import UpkeepMixin
from jobs.registry import RetryPolicy

log = logging.getLogger("jobs.worker")

#: Longest a worker blocks on Redis before re-reading which queues are paused.
DEQUEUE_BLOCK = 0.5


PAUSE_REFRESH = 0.25


#: Pops the first job of the first non-empty list among KEYS, in order, and
#: reads its hash (ARGV[1]: the job keys' prefix) as Job.refresh would.
POP_FIRST = """
for _, key in ipairs(KEYS) do
  local job_id = redis.call('LPOP', key)
  if job_id then
    return {key, job_id, redis.call('HGETALL', ARGV[1] .. job_id)}
  end
end
return false
"""


#: Longest the command channel's thread sleeps (bounds a worker's exit).
PUBSUB_WAKE = 1.0


#: A heartbeat of the usual length is skipped when one went out this
#: recently (seconds): between two jobs RQ sends three in a row, a round trip
#: each; the worker's entry lives WORKER_TTL + 60 s, a job's 15 s or more.
HEARTBEAT_FRESH = 0.25


#: Seconds an idle worker's entry outlives its last heartbeat.
WORKER_TTL = 20


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


class RecordingMixin(UpkeepMixin):
    """Pause-aware dequeue, attempt recording and backoff retries, for any RQ
    worker class."""

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        given = queues if isinstance(queues, list | tuple) else [queues]
        client = connect.worker_connection(
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
        connect.wait_for_redis(client)
        lane_queues = [rq_queue(name, client) for name in expand_lanes(list(given))]
        super().__init__(lane_queues, *args, **kwargs)
        self._failures: dict[str, Failure] = {}
        self._all_lanes: list[Queue] = list(self._ordered_queues)
        self._lanes_by_name = {lane.name: lane for lane in self._all_lanes}
        self._paused: set[str] = set()
        self._paused_read_at = 0.0
        self._pop_first = self.connection.register_script(POP_FIRST)
        self._rss_sent_at = -RSS_EVERY
        self._beat_at = -HEARTBEAT_FRESH

    # -- pause-aware dequeue --------------------------------------------------

    def lane_queue(self, name: str) -> Queue:
        """The queue of one of this worker's lanes (a job process names the
        lane it took a job from): the worker's own object, not a new one."""
        found = self._lanes_by_name.get(name)
        return found if found is not None else rq_queue(name, self.connection)

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
        if self.get_state() != WorkerStatus.IDLE:  # RQ wrote it after the job
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
                result = self._dequeue_blocking(lanes_now)
                if result is not None:
                    return result
            except DequeueTimeout:
                pass
            except redis.exceptions.ConnectionError as exc:
                backoff = self._wait_out_redis(exc, backoff)
                continue
            backoff = 0.1
            if max_idle_time and time.monotonic() - idle_since > max_idle_time:
                return None

    def _dequeue_blocking(self, lanes_now: list[Queue]) -> tuple[Job, Queue] | None:
        """A job from the first of these lanes to have one, waiting for it at
        most DEQUEUE_BLOCK seconds (RQ's BLPOP); none to wait on: a nap.

        A job that waits already is taken with its hash in one round trip
        (_dequeue_now). Only an empty queue is waited on: RQ's blocking pop
        (BLPOP) and a read of the hash, which is kept, as _dequeue_now keeps
        it (RQ's dequeue_any drops it: a process-model job process would read
        it a third time)."""
        if not lanes_now:
            self._about_to_wait()
            time.sleep(DEQUEUE_BLOCK)
            return None
        found = self._dequeue_now(lanes_now)
        if found is not None:
            return found
        self._about_to_wait()
        by_key = {lane.key: lane for lane in lanes_now}
        client: Any = self.connection
        popped = client.blpop(list(by_key), DEQUEUE_BLOCK)
        if popped is None:
            return None
        key, job_id = popped[0].decode(), popped[1].decode()
        raw = client.hgetall(self._job_prefix + job_id)
        if not raw:
            return None  # deleted meanwhile: RQ skips it too
        return self._restored(job_id, raw), by_key[key]

    def _about_to_wait(self) -> None:
        """Called before the dequeue blocks: what must be in Redis while the
        worker waits is written now (the slot worker's freed slots)."""

    def _wait_out_redis(self, exc: Exception, backoff: float) -> float:
        """Redis went away in the dequeue loop: say so, wait `backoff`
        seconds; the next wait (doubled, at most 1 s)."""
        self.log.warning(
            "redis unavailable, retrying",
            extra={"worker": self.name, "error": str(exc), "retry_in": backoff},
        )
        time.sleep(backoff)
        return min(1.0, backoff * 2)

    def _dequeue_now(self, lanes_now: list[Queue]) -> tuple[Job, Queue] | None:
        """The first job of the first lane that has one, without blocking, and
        its hash, in one round trip (RQ pops the lanes one by one: a round
        trip per empty lane in front, for every job, then one to fetch it)."""
        by_key = {lane.key: lane for lane in lanes_now}
        while True:
            found = self._pop_first(keys=list(by_key), args=[self._job_prefix])
            if found is None:
                return None
            taken = self._popped(found, by_key)
            if taken is not None:
                return taken
            # gone meanwhile (deleted): RQ skips it too

    def _pop_in(self, pipeline: Any, lanes_now: list[Queue]) -> None:
        """The same pop as one more command of a transaction (EVAL, not
        EVALSHA: a script missing from the server's cache cannot fail it)."""
        keys = [lane.key for lane in lanes_now]
        pipeline.eval(POP_FIRST, len(keys), *keys, self._job_prefix)

    @property
    def _job_prefix(self) -> str:
        return str(self.job_class.redis_job_namespace_prefix)

    def _popped(self, found: Any, by_key: dict[str, Queue]) -> tuple[Job, Queue] | None:
        """The job a pop returned, restored from its hash; None if its hash
        was gone (deleted meanwhile)."""
        key, job_id, flat = found[0].decode(), found[1].decode(), found[2]
        if not flat:
            return None
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return self._restored(job_id, raw), by_key[key]

    def _restored(self, job_id: str, raw: dict[bytes, bytes]) -> Job:
        """The job from the hash a dequeue read, as Job.fetch restores it
        from its HGETALL; the hash kept for a job process to restore too."""
        job = self.job_class(
            job_id, connection=self.connection, serializer=self.serializer
        )
        job.restore(raw)
        if isinstance(job, ConsoleJob):
            job.dequeued_hash = raw
        return job

    def _lanes_to_take_from(self) -> list[Queue]:
        """The lanes the success transaction of the job in hand also takes
        the next job from (none: it takes none); see SlotWorker."""
        return []

    def _took_in_transaction(self, taken: tuple[Job, Queue] | None) -> None:
        """What the success transaction's pop found (None: nothing waited)."""

    #: Does a job's preparation heartbeat the worker's hash, as RQ's does?
    #: Not in a slot worker: its worker process beats for itself and every
    #: running job (SlotWorker._beat), and a job process would report its own
    #: resident memory as the worker's.
    beats_in_preparation = True

    def prepare_job_execution(
        self, job: Job, remove_from_intermediate_queue: bool = False
    ) -> None:
        """RQ's (a copy, fingerprinted in tests/test_rq_contract.py) in fewer
        commands: `current_job` and its working time in one HSET; the job's
        `last_heartbeat` written once, by its preparation's own HSET (RQ's
        job.heartbeat writes it first, alone: its registry update is gone
        from RQ); the worker's heartbeat only where beats_in_preparation."""
        with self.connection.pipeline() as pipeline:
            self.current_job_working_time = 0
            pipeline.hset(
                self.key, mapping={"current_job": job.id, "current_job_working_time": 0}
            )
            if self.beats_in_preparation:
                self.heartbeat(self.get_heartbeat_ttl(job), pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            if remove_from_intermediate_queue:
                queue = Queue(job.origin, connection=self.connection)
                pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()
        self.procline(
            f"Processing {job.func_name} from {job.origin} since {time.time()}"
        )

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat plus, once a second, this process's resident memory,
        in one round trip (RQ beats several times a job). A lost connection is
        survived: the next heartbeat catches up."""
        own = pipeline is None
        moment = time.monotonic()
        if own and timeout is None and moment - self._beat_at < HEARTBEAT_FRESH:
            return  # RQ beats again and again between two jobs: one will do
        pipe = self.connection.pipeline() if own else pipeline
        super().heartbeat(timeout, pipeline=pipe)
        self._beat_at = moment
        if moment - self._rss_sent_at >= RSS_EVERY:
            fields = self._memory_fields().items()
            pipe.hset(self.key, items=[part for field in fields for part in field])
            self._rss_sent_at = moment
        if own:
            with self._tolerating_redis_loss("heartbeat"):
                pipe.execute()

    def _memory_fields(self) -> dict[str, str]:
        """What the heartbeat says of memory: this process's resident size."""
        return {"rss_kb": str(resident_kb())}

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
        canceled_by = cancels.cancel_requested(job.id, self.connection)
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
