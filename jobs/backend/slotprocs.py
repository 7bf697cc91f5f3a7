"""The process model of worker slots: long-lived job processes, reused.

A slot worker (jobs.backend.slots) forks up to N children from its frozen heap and
hands each one job at a time over a pipe: (job id, lane, execution id, the
job's hash as the worker's dequeue read it, or None: then read again). The
child runs the job as a forked job process does (RQ's perform_job: the
job's preparation, its timeout alarm, its outcome), answers whether it must
be replaced, and waits for the next. A child is replaced after
JOB_PROCESS_MAX_JOBS jobs or once its resident memory passes
JOB_PROCESS_MAX_MEMORY_MB (both settings), so a job that leaks or corrupts
state harms at most the jobs that follow it in the same child until then;
a child that crashes loses only its own job (recovered as a fork-model job
would be), and the worker starts another.

A child that ends a job takes the next one itself when its worker lets it
(the worker's gate: not stopping, not suspended): it pops the first waiting
job of the unpaused lanes, in the transaction that records its job's success
(ConsoleWorker._record_success) or, after a failure, with the dequeue's one
round trip of its own, and runs it, the execution written with the job's
preparation. A freed slot is refilled without the worker's two round trips
and its two hops over the pipe; the count of busy slots does not change, so
load still follows capacity. It tells the worker which job it took on a
second, one-way pipe (`Child.took`) that the worker reads whenever it tends
its slots (every SLOT_POLL at most) but never waits on: the worker is not
woken once a job (a wake-up, a read and a reschedule cost it about 0.2 ms of
CPU a job). What must reach the worker at once goes on the first pipe: a
slot freed (the child found nothing, or the gate was shut), a child to
replace, a job that is not for this child (refused, or its task's model is
another: the worker starts it as one it dequeued), and, by its end of file,
a child's death; the worker reads what the child took before any of these.

What a child saves over a fork per job: the fork and exit (page tables,
copy-on-write faults), a new Redis connection and its handshake, the
imports. A task's `memory_limit_mb` is not applied in a reused child (an
address-space cap would outlive its job): such a task belongs to `fork`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import mmap
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing import Lock, Pipe
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import redis
from rq.exceptions import NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.queue import Queue

from jobs import conf
from jobs.backend.forking import (
    die_with_parent,
    forget_inherited_db_connections,
    resident_kb,
)
from jobs.backend.queueing import ConsoleJob

if TYPE_CHECKING:
    from jobs.backend.slots import SlotWorker

DEFAULT_MAX_JOBS = 1000
DEFAULT_MAX_MEMORY_MB = 256


class Running:
    """Which job a child's job code runs, shared with its worker: a job
    process takes its next job itself, so the worker's slots may lag behind
    it; the worker stops or hard-kills a child only while it still runs the
    job meant (under the lock the child switches jobs with), never the one
    it took after. None from the end of a job's code (its outcome is being
    recorded) until the next job's code starts."""

    SIZE = 16

    def __init__(self) -> None:
        self._bytes = mmap.mmap(-1, self.SIZE)  # anonymous and shared across fork
        self._lock = Lock()

    @classmethod
    def _digest(cls, job_id: str | None) -> bytes:
        if job_id is None:
            return bytes(cls.SIZE)
        return hashlib.blake2b(job_id.encode(), digest_size=cls.SIZE).digest()

    def set(self, job_id: str | None) -> None:
        """In the child: now running `job_id` (None: no job's code)."""
        with self._lock:
            self._bytes[:] = self._digest(job_id)

    @contextlib.contextmanager
    def holding(self, job_id: str) -> Iterator[bool]:
        """In the worker: whether the child runs `job_id`, the child kept
        from switching jobs meanwhile. A lock not had within a second (its
        child died holding it) is taken as running: the child is stopped."""
        held = self._lock.acquire(timeout=1.0)
        try:
            yield not held or self._bytes[:] == self._digest(job_id)
        finally:
            if held:
                self._lock.release()


@dataclass(eq=False)
class Child:
    pid: int
    conn: Connection
    #: The worker's end of the pipe the child says on which job it took
    #: itself and runs (a `Next`); read while tending, never waited on.
    took: Connection
    busy: bool = False
    running: Running = field(default_factory=Running)

    def close(self) -> None:
        self.conn.close()
        self.took.close()


@dataclass(frozen=True)
class Limits:
    max_jobs: int
    max_memory_kb: int

    @classmethod
    def from_settings(cls) -> Limits:
        jobs = conf.get("JOB_PROCESS_MAX_JOBS") or DEFAULT_MAX_JOBS
        memory = conf.get("JOB_PROCESS_MAX_MEMORY_MB") or DEFAULT_MAX_MEMORY_MB
        return cls(max(1, int(jobs)), max(1, int(memory)) * 1024)


def spawn(worker: SlotWorker, limits: Limits) -> Child:
    """Fork a child that serves jobs until told to stop or replaced."""
    ours, theirs = Pipe()
    took_r, took_w = Pipe(duplex=False)
    running = Running()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (tests run it for real)
        try:
            ours.close()
            took_r.close()
            serve(worker, theirs, limits, running, took_w)
        finally:
            os._exit(1)
    theirs.close()
    took_w.close()
    return Child(pid=pid, conn=ours, took=took_r, running=running)


class Gate:
    """One byte shared with the children forked after it: may a child that
    ended a job take the next one itself? The worker opens and shuts it."""

    def __init__(self) -> None:
        self._byte = mmap.mmap(-1, 1)  # anonymous and shared across fork

    def set(self, open_: bool) -> None:
        self._byte[0] = 1 if open_ else 0

    def is_open(self) -> bool:
        return self._byte[0] == 1


#: The job a child took next: (job id, lane, execution id or None when the
#: worker is to start it, the job's hash as the dequeue read it, the job's
#: timeout as its restore read it: the worker needs no more while it runs).
#: Alone on `took` when the child runs it; else on the first pipe after each
#: job, as (must the child be replaced, the Next or None).
Next = tuple[str, str, str | None, dict[bytes, bytes], float | None]


def serve(
    worker: SlotWorker,
    conn: Connection,
    limits: Limits,
    running: Running,
    took: Connection,
) -> None:
    """The child's loop: one job at a time, as long as the limits allow; a
    job it took and runs itself is said on `took`, the rest on `conn`."""
    os.setpgrp()
    die_with_parent()
    forget_inherited_db_connections()
    random.seed()
    worker.setup_work_horse_signals()
    worker._is_horse = True
    worker.forget_slots()
    worker._running = running
    done = 0
    while True:
        try:
            job_id, lane, execution_id, raw = conn.recv()
        except EOFError:  # the worker closed its end: stop
            os._exit(0)
        job: ConsoleJob | None = None
        while True:
            # Its success transaction may take the next job (SlotWorker).
            worker._take_allowed = done + 1 < limits.max_jobs
            running.set(job_id)
            run_one(worker, job_id, lane, execution_id, raw, job)
            done += 1
            replace = done >= limits.max_jobs or resident_kb() > limits.max_memory_kb
            taken = take_next(worker, replace)
            if taken is None:
                conn.send((replace, None))
                break
            taken_job, queue, execution_id = taken
            job = taken_job if isinstance(taken_job, ConsoleJob) else None
            job_id, lane = taken_job.id, queue.name
            raw = getattr(taken_job, "dequeued_hash", None)
            next_ = (job_id, lane, execution_id, raw, taken_job.timeout)
            if execution_id is None:
                conn.send((replace, next_))
                break  # the worker starts it
            took.send(next_)  # replace is False: a child to replace takes none
        if replace:
            os._exit(0)


def take_next(
    worker: SlotWorker, replace: bool
) -> tuple[Job, Queue, str | None] | None:
    """The next waiting job: the one the success transaction took, else one
    taken now if the worker's gate is open and this child is not to be
    replaced: (job, its lane, a new execution id if this child runs it, else
    None: the worker starts it)."""
    took, found = worker._took_ahead, worker._taken_ahead
    worker._took_ahead, worker._taken_ahead = False, None
    lanes_now = [] if took or replace else worker.lanes_open_to_take()
    if lanes_now:
        try:
            found = worker._dequeue_now(lanes_now)
        except redis.exceptions.RedisError:
            return None  # the worker meets it in its own loop
    if found is None:
        return None
    job, queue = found
    mine = (
        not replace
        and isinstance(job, ConsoleJob)
        and not job.refusal
        and worker.runs_in_process(job)
    )
    return job, queue, uuid.uuid4().hex if mine else None


def run_one(
    worker: Any,
    job_id: str,
    lane: str,
    execution_id: str,
    raw: dict[bytes, bytes] | None = None,
    job: ConsoleJob | None = None,
) -> None:
    """One job, from the hash the worker read at dequeue when it has it,
    else read here; `job`: one this child took itself. Its execution is
    written with its preparation, whether the worker handed the job over
    (its id chosen there, SlotWorker._begin) or this child took it."""
    execution = Execution(
        execution_id, job_id, worker.connection, worker_name=worker.name
    )
    if job is None:
        try:
            job = worker.job_class(
                job_id, connection=worker.connection, serializer=worker.serializer
            )
            if raw is None:
                job.refresh()
            else:
                job.restore(raw)
        except NoSuchJobError:
            return  # deleted meanwhile: nothing to run (RQ skips it too)
    if isinstance(job, ConsoleJob):
        job.in_preparation = functools.partial(
            save_execution, job, execution, worker._ttl(job, 0.0)
        )
    worker.execution = execution
    worker.current_job_working_time = 0
    worker.perform_job(job, worker.lane_queue(lane))
    worker.execution = None


def save_execution(job: Job, execution: Execution, ttl: int, pipeline: Any) -> None:
    """What RQ's Execution.create writes (fingerprinted in tests), for an
    execution whose id is already chosen: its hash and its two registries."""
    execution.save(ttl=ttl, pipeline=pipeline)
    ExecutionRegistry(job_id=job.id, connection=pipeline).add(
        execution=execution, ttl=ttl, pipeline=pipeline
    )
    job.started_job_registry.add_execution(
        execution, pipeline=pipeline, ttl=ttl, xx=False
    )
