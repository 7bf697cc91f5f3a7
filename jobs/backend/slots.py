"""Worker slots: one worker process running up to N jobs at once (issue 19).

`rqworker --concurrency N` runs a SlotWorker. It dequeues only while one of
its N slots is free (no prefetching jobs it cannot start) and runs each job
in the model its task declares (`@task(..., execution=...)`), or the one the
worker is told to use for all (`--execution`):

- fork: a fresh process per job, as the one-job worker does, now up to N of
  them at once. A job that crashes its process harms no other job.
- thread: a thread of the worker, for I/O-bound work; `async def` tasks run
  on the worker's one event loop (jobs.eventloop). Jobs share the process:
  a crash of the process loses all of them, and the lost-worker recovery
  runs them again.

Every running job is an RQ execution of its own (RQ's `Execution`: an entry
in the queue's started registry, a hash and a heartbeat), as RQ's main branch
models several executions per worker, so `rq info`, RQ's clean-up and this
project's recovery see each one. The worker's hash carries RQ's fields and
two of ours: `concurrency` and `slots_busy`.

All Redis bookkeeping happens in the worker's main thread, one job at a time;
a job thread only runs the task. A thread-model job that outlives its timeout
is recorded as timed out at its deadline and its thread is sent the timeout
exception; a thread that will not stop (blocked in C) is abandoned, and once
the worker's other jobs have finished the worker starts afresh (the same
command line, exec'd) rather than run on beside it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from multiprocessing.connection import wait as wait_for_any
from typing import Any

import redis
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.utils import now
from rq.worker import WorkerStatus

from jobs import eventloop, registry
from jobs.backend import slotprocs
from jobs.backend.forking import job_processes_kb
from jobs.backend.lease import HEARTBEAT_GRACE
from jobs.backend.queueing import ConsoleJob
from jobs.backend.recording import PAUSE_REFRESH
from jobs.backend.slotends import (
    Slot,
    SlotEndings,
)
from jobs.backend.workers import ConsoleWorker

#: How often the main thread looks at its slots while jobs run (reaping forked
#: job processes, finished threads, deadlines).
SLOT_POLL = 0.05
#: With jobs running and the queues empty, they are looked at this often.
EMPTY_POLL = 0.2


def model_for(job: Job, override: str | None) -> str:
    """The execution model of a job: the worker's override, else its task's."""
    if override:
        return override
    try:
        return registry.get(str(job.meta.get("task", ""))).execution
    except registry.UnknownTask:
        return "fork"  # fails in its own process, as on a one-job worker


class SlotWorker(SlotEndings, ConsoleWorker):
    """RQ worker with N slots; see the module's docstring."""

    concurrency = 1
    #: The worker process beats for itself and every running job (_beat).
    beats_in_preparation = False
    #: "fork" or "thread" for every job, whatever its task declares.
    execution_override: str | None = None
    #: The command line to exec when the process must start afresh (set by
    #: `rqworker`); None: the worker stops instead (its supervisor restarts).
    restart_argv: list[str] | None = None

    def __init__(
        self,
        *args: Any,
        concurrency: int | None = None,
        execution: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, int(concurrency or self.concurrency))
        self.execution_override = execution or self.execution_override
        if self.execution_override not in (None, *registry.EXECUTION_MODELS):
            raise ValueError(f"unknown execution model {self.execution_override!r}")
        self._slots: dict[str, Slot] = {}
        self._wake = threading.Event()
        # A self-pipe: a job thread's end (or a signal) wakes the main loop
        # out of its wait on the job processes at once.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: Timed-out job threads not yet stopped, with when they timed out.
        self._abandoned: list[tuple[threading.Thread, float]] = []
        self._beat_at = 0.0
        self._polled_empty_at = 0.0
        self._suspended = (False, -PAUSE_REFRESH)  # (`rq suspend`ed, read at)
        self._cold = False
        #: The process model's job processes, idle or busy.
        self._children: list[slotprocs.Child] = []
        #: Open while a job process that ends a job may take the next itself.
        self._gate = slotprocs.Gate()
        self._stopping = set()
        self._limits = slotprocs.Limits.from_settings()
        #: A slot freed since the worker's hash last said so: written with the
        #: next job's start (_begin) or, if none starts at once, before waiting.
        self._fields_due = False

    def forget_slots(self) -> None:
        """In a job process: the worker's slots are not its own, nor the
        other children's pipes (a copy held here would keep them open)."""
        self._slots = {}
        self._spares.forget()
        for child in self._children:
            child.close()
        self._children = []

    # -- start-up and the worker's hash -------------------------------------

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        pipe = self.connection.pipeline()
        with self._tolerating_redis_loss("slots"), pipe:
            pipe.hset(
                self.key, mapping={"concurrency": self.concurrency, "slots_busy": 0}
            )
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
        if self.execution_override != "fork":
            eventloop.start()
        if self.execution_override == "process":
            # Every job runs in one: start them all now, as a prefork pool
            # does, rather than one by one as the first N jobs arrive.
            for _ in range(self.concurrency):
                self._children.append(slotprocs.spawn(self, self._limits))

    def _slot_fields(self, pipe: Any) -> None:
        """Slots in use, and one running job as RQ's `current_job` (a reader
        that knows one job per worker sees one of them)."""
        pipe.hset(self.key, "slots_busy", str(len(self._slots)))
        if self._slots:
            pipe.hset(self.key, "current_job", next(iter(self._slots)))
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        else:
            pipe.hdel(self.key, "current_job")
            idle = WorkerStatus.SUSPENDED if self._suspended[0] else WorkerStatus.IDLE
            self.set_state(idle, pipeline=pipe)

    def _fields_later(self) -> None:
        """A slot freed by a job that recorded its own end: said in the hash
        with the next job's start (one round trip a job less while there is
        work), or by _flush_fields before the worker waits."""
        self._fields_due = True

    def _about_to_wait(self) -> None:
        self._flush_fields()

    def _flush_fields(self) -> None:
        if not self._fields_due:
            return
        pipe = self.connection.pipeline()
        with self._tolerating_redis_loss("slots"), pipe:
            self._slot_fields(pipe)
            pipe.execute()
            self._fields_due = False

    def cleanup_execution(self, job: Job, pipeline: Any) -> None:
        super().cleanup_execution(job, pipeline)
        if not self.is_horse:
            self._slot_fields(pipeline)

    # -- the loop: dequeue only with a free slot ----------------------------

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        found = None
        try:
            found = self._dequeue_loop(timeout, max_idle_time)
            return found
        finally:
            if found is None:
                self._flush_fields()

    def _dequeue_loop(
        self, timeout: int | None, max_idle_time: int | None
    ) -> tuple[Job, Queue] | None:
        idle_since = time.monotonic()
        backoff = 0.1
        while True:
            try:
                self._tend()
                if self._stop_requested:
                    return None
                abandoned = self._abandoned_alive()
                self._gate.set(not abandoned and not self._is_suspended())
                if abandoned:
                    if not self._slots and self._abandoned_for_good():
                        self._start_afresh()
                        return None
                    self._nap()
                    continue
                if len(self._slots) >= self.concurrency:
                    self._nap()
                    continue
                if self._is_suspended():
                    if timeout is None:
                        return None  # burst: RQ stops a suspended worker too
                    self._nap()
                    continue
                found = self._next_job(timeout)
                if found is not None:
                    return found
                if timeout is None and not self._slots:
                    return None  # burst: nothing left to start or finish
            except DequeueTimeout:
                pass
            except redis.exceptions.ConnectionError as exc:
                backoff = self._wait_out_redis(exc, backoff)
                continue
            backoff = 0.1
            if self._slots:
                idle_since = time.monotonic()
            elif max_idle_time and time.monotonic() - idle_since > max_idle_time:
                return None

    def _next_job(self, timeout: int | None) -> tuple[Job, Queue] | None:
        lanes_now = self.active_lanes()
        if timeout is not None and not self._slots:
            # Nothing running: block on Redis, as the one-job worker does
            # (a freed slot is said in the hash before it waits, or with the
            # next job's start if one waits already).
            return self._dequeue_blocking(lanes_now)
        # Jobs running: never block on Redis (they must be tended), and ask
        # an empty queue again only every EMPTY_POLL seconds or when woken.
        moment = time.monotonic()
        if self._wake.is_set() or moment - self._polled_empty_at >= EMPTY_POLL:
            self._wake.clear()
            found = self._dequeue_now(lanes_now) if lanes_now else None
            if found is not None:
                return found
            self._polled_empty_at = moment
        self._nap()
        return None

    # -- in a process-model job process: the next job taken (slotprocs) -----

    #: May the success transaction of the job in hand take the next one too?
    #: Set by slotprocs.serve before each job, spent by the first ask.
    _take_allowed = False
    #: Whether it did, and what it found (None: nothing waited).
    _took_ahead = False
    _taken_ahead: tuple[Job, Queue] | None = None

    #: Which job this job process's code runs (slotprocs.Running); None in
    #: the worker.
    _running: slotprocs.Running | None = None

    def handle_execution_ended(
        self, job: Job, queue: Queue, heartbeat_ttl: int
    ) -> None:
        if self._running is not None:  # its code ended: stop-job may not kill
            self._running.set(None)
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def _lanes_to_take_from(self) -> list[Queue]:
        allowed, self._take_allowed = self._take_allowed, False
        return self.lanes_open_to_take() if allowed else []

    def lanes_open_to_take(self) -> list[Queue]:
        """In a job process: the unpaused lanes while the worker's gate is
        open, else none (nor with Redis away: the worker meets that)."""
        if not self._gate.is_open():
            return []
        try:
            return self.active_lanes()
        except redis.exceptions.RedisError:
            return []

    def _took_in_transaction(self, taken: tuple[Job, Queue] | None) -> None:
        self._took_ahead, self._taken_ahead = True, taken

    def runs_in_process(self, job: Job) -> bool:
        """Does the job run in a long-lived job process (the process model)?"""
        return model_for(job, self.execution_override) == "process"

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's waits in the main thread while `rq suspend` lasts, and the
        running jobs would go untended (no heartbeat: recovered as lost while
        they run). The dequeue loop takes no new job instead (_is_suspended)."""

    def _is_suspended(self) -> bool:
        """`rq suspend` in force? Read at most every PAUSE_REFRESH seconds."""
        was, read_at = self._suspended
        moment = time.monotonic()
        if moment - read_at < PAUSE_REFRESH:
            return was
        suspended = bool(is_suspended(self.connection))
        self._suspended = (suspended, moment)
        if suspended != was:  # said in the worker's state, as RQ does
            busy = WorkerStatus.BUSY if self._slots else WorkerStatus.IDLE
            self.set_state(WorkerStatus.SUSPENDED if suspended else busy)
        return suspended

    def _nap(self) -> None:
        """Wait until a job ends (a thread's wake-up, a job process's pipe or
        exit) or SLOT_POLL passes: a slot is refilled as soon as it frees."""
        self._flush_fields()
        waitables: list[Any] = [self._wake_r]
        for slot in self._slots.values():
            if slot.child is not None:
                waitables.append(slot.child.conn)
            elif slot.pidfd is not None:
                waitables.append(slot.pidfd)
        if self._wake_r in wait_for_any(waitables, timeout=SLOT_POLL):
            with contextlib.suppress(OSError):
                while os.read(self._wake_r, 4096):
                    pass

    # -- starting a job -----------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Start the job in a slot and return at once (RQ's loop then goes
        back to the dequeue, which waits for a free slot)."""
        if isinstance(job, ConsoleJob) and job.refusal:
            self._refuse(job, queue)
            return
        model = model_for(job, self.execution_override)
        try:
            slot = self._begin(job, queue, model)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self.log.warning(
                "redis unavailable as a job started; waiting for it",
                extra={"worker": self.name, "job_id": job.id, "error": str(exc)},
            )
            self._wait_for_redis()
            return
        if model == "process":
            self._hand_over(slot)
        elif model == "thread":
            slot.thread = threading.Thread(
                target=self._run_in_thread,
                args=(slot,),
                name=f"job-{job.id}",
                daemon=True,  # an abandoned one must not hold the exit
            )
            slot.thread.start()
        else:
            self._fork(slot)

    def _begin(self, job: Job, queue: Queue, model: str) -> Slot:
        """The job's execution, in one round trip; for a thread also what the
        job process does first in the fork model (status, attempt, event).
        In the process model no round trip: the job process writes the
        execution with the job's preparation (slotprocs.run_one), as for a
        job it takes itself, and the worker's hash says the slot is busy with
        its next write (before it waits)."""
        if model == "process":
            execution = Execution(
                uuid.uuid4().hex, job.id, self.connection, worker_name=self.name
            )
            slot = self._slots[job.id] = Slot.of(job, queue, execution, model)
            self._fields_later()
            return slot
        ttl = self._ttl(job, 0.0)
        with self.connection.pipeline() as pipe:
            execution = Execution.create(job, ttl, pipeline=pipe, worker_name=self.name)
            slot = Slot.of(job, queue, execution, model)
            self._slots[job.id] = slot
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            due, self._fields_due = self._fields_due, False
            if due:  # a slot freed meanwhile: current_job may be its job
                self._slot_fields(pipe)
            else:
                pipe.hset(self.key, "slots_busy", str(len(self._slots)))
            if model == "thread":
                self.set_current_job_id(job.id, pipeline=pipe)
                job.heartbeat(now(), ttl, pipeline=pipe)
                job.prepare_for_execution(self.name, pipeline=pipe)
            try:
                pipe.execute()
            except BaseException:
                self._slots.pop(job.id, None)
                self._fields_due = self._fields_due or due
                raise
        return slot

    def _run_in_thread(self, slot: Slot) -> None:
        try:
            slot.outcome = ("ok", slot.job.perform())
        except BaseException:  # noqa: BLE001 - every failure is the job's own
            slot.outcome = ("error", sys.exc_info())
        finally:
            self._wake_up()

    def _wake_up(self) -> None:
        self._wake.set()
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

    def _fork(self, slot: Slot) -> None:
        self.execution = slot.execution
        self.current_job_working_time = 0
        slot.job.started_at = now()  # as _hand_over
        # Taken before the fork: the job process adopts it (jobconn.py).
        slot.spare = self._job_spare = self._spares.take()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the job process
            try:
                os.setpgrp()
                self.forget_slots()
                self.main_work_horse(slot.job, slot.queue)
            finally:
                os._exit(1)
        self.execution = None
        self._job_spare = None
        slot.pid = pid
        with contextlib.suppress(OSError, AttributeError):  # Linux >= 5.3
            slot.pidfd = os.pidfd_open(pid)

    def _hand_over(self, slot: Slot) -> None:
        """The job to an idle long-lived job process (a new one if none)."""
        raw = getattr(slot.job, "dequeued_hash", None)
        message = (slot.job.id, slot.queue.name, slot.execution.id, raw)
        # As RQ's monitor_work_horse does: a job whose process dies is
        # recorded with when it started (the job process sets its own).
        slot.job.started_at = now()
        while True:
            child = next((c for c in self._children if not c.busy), None)
            if child is None:
                child = slotprocs.spawn(self, self._limits)
                self._children.append(child)
            try:
                child.conn.send(message)
            except OSError:  # it died while idle: reap it, take another
                self._drop_child(child)
                continue
            child.busy, slot.child, slot.pid = True, child, child.pid
            return

    def _drop_child(self, child: slotprocs.Child, wait: bool = True) -> int:
        """Forget a child; its wait status (0 if unknown)."""
        if child in self._children:
            self._children.remove(child)
        child.close()
        try:
            _, status = os.waitpid(child.pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            status = 0
        return status

    # -- tending running jobs -----------------------------------------------

    def _tend(self) -> None:
        """Reap what ended, end what overran, heartbeat what runs."""
        for slot in list(self._slots.values()):
            if slot.model == "thread":
                if slot.outcome is not None:
                    self._finish_thread(slot)
                elif slot.stopped:
                    self._stop_thread(slot)
                elif slot.timeout is not None and slot.elapsed > slot.timeout:
                    self._time_out_thread(slot)
            elif slot.model == "process":
                self._reap_process(slot)
            else:
                self._reap_fork(slot)
        self._reap_idle_children()
        # Idle too: RQ's own loop heartbeats the worker as it waits for jobs.
        if time.monotonic() - self._beat_at >= self.job_monitoring_interval:
            self._beat()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()

    def _beat(self) -> None:
        """The worker's and every running job's heartbeat, in one round trip
        (RQ sends two per job)."""
        self._beat_at = time.monotonic()
        pipe = self.connection.pipeline()
        with self._tolerating_redis_loss("heartbeat"), pipe:
            self.heartbeat(self.job_monitoring_interval + 60, pipeline=pipe)
            for slot in self._slots.values():
                ttl = self._ttl(slot.job, slot.elapsed)
                slot.execution.heartbeat(slot.job.started_job_registry, ttl, pipe)
                slot.job.heartbeat(now(), ttl, pipeline=pipe, xx=True)
            pipe.execute()

    def _memory_fields(self) -> dict[str, str]:
        """Also its job processes' memory (the process and fork models): how
        many live now and their PSS, for the Workers screen."""
        count, kb = job_processes_kb(self._job_process_pids())
        return {
            **super()._memory_fields(),
            "job_processes": str(count),
            "job_processes_kb": str(kb),
        }

    def _ttl(self, job: Job, elapsed: float) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - elapsed, interval)) + HEARTBEAT_GRACE
        return interval + HEARTBEAT_GRACE


def worker_class(concurrency: int, execution: str | None) -> type[SlotWorker]:
    """A SlotWorker class with these settings (django-rq builds the worker
    from a class and the queue names alone)."""
    return type(
        "SlotWorker",
        (SlotWorker,),
        {
            "concurrency": concurrency,
            "execution_override": execution,
            "restart_argv": [sys.executable, *sys.argv],
            "__module__": __name__,
        },
    )
