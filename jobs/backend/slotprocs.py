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

What a child saves over a fork per job: the fork and exit (page tables,
copy-on-write faults), a new Redis connection and its handshake, the
imports. A task's `memory_limit_mb` is not applied in a reused child (an
address-space cap would outlive its job): such a task belongs to `fork`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from rq.exceptions import NoSuchJobError
from rq.executions import Execution

from jobs import conf
from jobs.backend.forking import (
    die_with_parent,
    forget_inherited_db_connections,
    resident_kb,
)
from jobs.backend.queueing import rq_queue

if TYPE_CHECKING:
    from jobs.backend.slots import SlotWorker

DEFAULT_MAX_JOBS = 1000
DEFAULT_MAX_MEMORY_MB = 256


@dataclass(eq=False)
class Child:
    pid: int
    conn: Connection
    busy: bool = False


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
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (tests run it for real)
        try:
            ours.close()
            serve(worker, theirs, limits)
        finally:
            os._exit(1)
    theirs.close()
    return Child(pid=pid, conn=ours)


def serve(worker: SlotWorker, conn: Connection, limits: Limits) -> None:
    """The child's loop: one job at a time, as long as the limits allow."""
    os.setpgrp()
    die_with_parent()
    forget_inherited_db_connections()
    random.seed()
    worker.setup_work_horse_signals()
    worker._is_horse = True
    worker.forget_slots()
    done = 0
    while True:
        try:
            job_id, lane, execution_id, raw = conn.recv()
        except EOFError:  # the worker closed its end: stop
            os._exit(0)
        run_one(worker, job_id, lane, execution_id, raw)
        done += 1
        replace = done >= limits.max_jobs or resident_kb() > limits.max_memory_kb
        conn.send(replace)
        if replace:
            os._exit(0)


def run_one(
    worker: Any,
    job_id: str,
    lane: str,
    execution_id: str,
    raw: dict[bytes, bytes] | None = None,
) -> None:
    """One job, from the hash the worker read at dequeue when it has it (a
    forked job process runs the worker's copy too), else read here."""
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
    worker.execution = Execution(
        execution_id, job_id, worker.connection, worker_name=worker.name
    )
    worker.current_job_working_time = 0
    worker.perform_job(job, rq_queue(lane, worker.connection))
    worker.execution = None
