"""How a slot's job ends (reaped, timed out, stopped, lost) and how a slot worker
stops: the SlotEndings half of SlotWorker (jobs/backend/slots.py)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import redis
from rq.command import parse_payload
from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.utils import now

from jobs.backend import slotprocs

#: How often the main thread looks at its slots while jobs run (reaping forked
#: job processes, finished threads, deadlines).


#: RQ kills a forked job this long after its timeout if its own alarm failed.
HARD_KILL_AFTER = 60


#: A timed-out job thread gets this long to stop (an async task's thread
#: stops within eventloop.WAIT_SLICE) before it counts as abandoned.
STOP_GRACE = 2.0


@dataclass(eq=False)
class Slot:
    job_id: str
    queue: Queue
    execution: Execution
    model: str
    #: Its job's timeout as the job says it (Job.timeout: None, -1 or seconds).
    job_timeout: float | None
    #: The job, or how to restore it when first needed: the worker needs
    #: only a job's id and timeout while a job process it took runs it.
    source: Job | Callable[[], Job]
    started: float = field(default_factory=time.monotonic)
    pid: int = 0
    thread: threading.Thread | None = None
    #: The long-lived job process running it (process model).
    child: slotprocs.Child | None = None
    #: Readable once its forked job process has exited (fork model).
    pidfd: int | None = None
    #: The connection lent to its forked job process (jobconn.Spare).
    spare: Any = None
    #: RQ's stop-job command named it.
    stopped: bool = False
    #: Set by the job thread: ("ok", value) or ("error", exc_info).
    outcome: tuple[str, Any] | None = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @classmethod
    def of(cls, job: Job, queue: Queue, execution: Execution, model: str) -> Slot:
        return cls(job.id, queue, execution, model, job.timeout, job)

    @property
    def job(self) -> Job:
        if not isinstance(self.source, Job):
            self.source = self.source()
        return self.source

    @property
    def timeout(self) -> int | None:
        seconds = self.job_timeout or Queue.DEFAULT_TIMEOUT
        return None if seconds == -1 else int(seconds)


class JobStopped(Exception):
    """Raised in a thread-model job stopped by RQ's stop-job command."""


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask Python to raise `exc_type` in `thread` at its next bytecode (a
    thread blocked in C, such as time.sleep, only sees it when that returns).

    Not on CPython 3.11 while a trace function is set (coverage, a debugger,
    a tracing profiler): there a pending exception for a thread blocked in C
    starves every other thread of the process until that thread runs again
    (the worker's heartbeats stop; its other jobs would be recovered as lost
    and run twice). The thread is then abandoned as one that will not stop.
    """
    if thread.ident is None or not thread.is_alive():
        return
    if sys.version_info < (3, 12) and sys.gettrace() is not None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
    )


def _kill_group(pid: int) -> None:
    """SIGKILL a job process and its own children (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


if TYPE_CHECKING:
    from jobs.backend.workers import ConsoleWorker as _WorkerBase
else:
    _WorkerBase = object


class SlotEndings(_WorkerBase):
    """SlotWorker's reaping of finished, timed-out, stopped and lost jobs,
    RQ's commands and shutdown (a mixin: SlotWorker holds the slots)."""

    _slots: dict[str, Slot]
    _abandoned: list[tuple[threading.Thread, float]]
    _children: list[slotprocs.Child]
    _gate: slotprocs.Gate
    #: Jobs stop-job killed before the worker read that a job process took
    #: them (added by the command channel's thread, spent as the worker
    #: records the job process's end: _reap_process).
    _stopping: set[str]
    _cold: bool
    restart_argv: list[str] | None

    if TYPE_CHECKING:  # SlotWorker's

        def _drop_child(self, child: slotprocs.Child, wait: bool = True) -> int: ...
        def _wake_up(self) -> None: ...
        def _slot_fields(self, pipe: Any) -> None: ...
        def _fields_later(self) -> None: ...
        def _tend(self) -> None: ...
        def _nap(self) -> None: ...

    def _finish_thread(self, slot: Slot) -> None:
        assert slot.outcome is not None
        kind, value = slot.outcome
        if kind == "ok":
            self._settle(slot, lambda job, queue: self._succeed(job, queue, value))
        else:
            self._settle(slot, lambda job, queue: self._fail(job, queue, value))

    def _succeed(self, job: Job, queue: Queue, value: Any) -> None:
        job.ended_at = now()
        job._result = value
        job._status = JobStatus.FINISHED
        self.handle_job_success(
            job=job, queue=queue, started_job_registry=queue.started_job_registry
        )

    def _fail(self, job: Job, queue: Queue, exc_info: Any) -> None:
        job.ended_at = now()
        job._status = JobStatus.FAILED
        exc_string = "".join(traceback.format_exception(*exc_info))
        self.handle_exception(job, *exc_info)
        self.handle_job_failure(
            job=job,
            queue=queue,
            started_job_registry=queue.started_job_registry,
            exc_string=exc_string,
        )

    def _time_out_thread(self, slot: Slot) -> None:
        """Recorded as timed out now; the thread is told to stop and, if it
        does not, abandoned (the process starts afresh once it is alone)."""
        assert slot.thread is not None
        raise_in_thread(slot.thread, JobTimeoutException)
        self._abandoned.append((slot.thread, time.monotonic()))
        try:
            raise JobTimeoutException(
                f"Task exceeded maximum timeout value ({slot.timeout} seconds)"
            )
        except JobTimeoutException:
            exc_info = sys.exc_info()
        self._settle(slot, lambda job, queue: self._fail(job, queue, exc_info))

    def _stop_thread(self, slot: Slot) -> None:
        """Stopped by RQ's command: recorded now, the thread told to stop
        (and abandoned if it will not), as at a timeout."""
        assert slot.thread is not None
        raise_in_thread(slot.thread, JobStopped)
        self._abandoned.append((slot.thread, time.monotonic()))
        self._settle(slot, lambda job, queue: self._lost(job, queue, 0, 0, True))

    def _reap_fork(self, slot: Slot) -> None:
        try:
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = slot.pid, 0
            spare_status = -1  # reaped elsewhere: its connection is not reused
        else:
            spare_status = status
        if pid == 0:
            limit = slot.timeout
            if limit is not None and slot.elapsed > limit + HARD_KILL_AFTER:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(slot.pid, signal.SIGKILL)
            return
        if slot.pidfd is not None:
            os.close(slot.pidfd)
            slot.pidfd = None
        spare, slot.spare = slot.spare, None
        self._spares.give_back(spare, spare_status)
        if status == 0:  # the job process recorded its outcome itself
            self._free(slot)
            return
        stopped = slot.stopped
        self._settle(slot, lambda j, q: self._lost(j, q, pid, status, stopped))

    def _reap_process(self, slot: Slot) -> None:
        child = slot.child
        assert child is not None
        slot = self._caught_up(slot, child)
        if child.conn.poll():
            try:
                replace, taken = child.conn.recv()
            except (EOFError, OSError):  # it died: its wait status says how
                # Stopped by stop-job (_stop_in_job_process: the flag was set
                # before the kill), perhaps before the worker read of the job.
                stopped = slot.job_id in self._stopping
                self._stopping.discard(slot.job_id)
                status = self._drop_child(child)
                self._settle(
                    slot, lambda j, q: self._lost(j, q, child.pid, status, stopped)
                )
                return
            child.busy = False
            if replace:  # it exits at once: reaped here
                self._drop_child(child)
            if taken is None:
                self._free(slot)
            else:
                self._slots.pop(slot.job_id, None)
                self._took_next(child, taken)
            return
        limit = slot.timeout
        if limit is not None and slot.elapsed > limit + HARD_KILL_AFTER:
            with child.running.holding(slot.job_id) as running:
                if running:
                    _kill_group(child.pid)

    def _caught_up(self, slot: Slot, child: slotprocs.Child) -> Slot:
        """The slot of the job the child runs now: each job it took and runs
        itself since (said on its `took` pipe, read here, in order) replaces
        the slot of the one before, which it recorded itself."""
        while child.took.poll():
            try:
                taken = child.took.recv()
            except (EOFError, OSError):  # it died: its first pipe says so
                break
            self._slots.pop(slot.job_id, None)
            slot = self._took_next(child, taken) or slot
        return slot

    def _took_next(self, child: slotprocs.Child, taken: slotprocs.Next) -> Slot | None:
        """The job process that ended a job took the next one (slotprocs):
        its slot now runs it (the count of busy slots is unchanged; the job
        process's preparation writes the execution and `current_job`), or,
        with no execution id, the worker starts it as one it dequeued."""
        job_id, lane, execution_id, raw, timeout = taken
        queue = self.lane_queue(lane)
        if execution_id is None:
            self._fields_later()
            self.execute_job(self._restored(job_id, raw), queue)
            return None
        execution = Execution(
            execution_id, job_id, self.connection, worker_name=self.name
        )
        started_at = now()  # as _hand_over

        def restore() -> Job:
            job = self._restored(job_id, raw)
            job.started_at = started_at
            return job

        child.busy = True
        slot = self._slots[job_id] = Slot(
            job_id,
            queue,
            execution,
            "process",
            timeout,
            restore,
            child=child,
            pid=child.pid,
        )
        return slot

    def _free(self, slot: Slot) -> None:
        """The slot's job process recorded the job's outcome itself: the slot
        is free (the worker's hash says so with its next write)."""
        self._slots.pop(slot.job_id, None)
        self._fields_later()

    def _reap_idle_children(self) -> None:
        for child in [c for c in self._children if not c.busy]:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(child.pid, os.WNOHANG)[0]:
                    self._drop_child(child, wait=False)

    def _lost(
        self, job: Job, queue: Queue, pid: int, status: int, stopped: bool = False
    ) -> None:
        """The job's process died without recording an outcome, or the job
        was stopped (RQ's monitor_work_horse, for one slot)."""
        if stopped:  # RQ's failure handler then neither retries nor fails it
            job.ended_at = now()
            self._stopped_job_id = job.id
            self.handle_job_failure(
                job,
                queue=queue,
                exc_string="Job stopped by user, work-horse terminated.",
            )
            return
        try:
            job_status = job.get_status()
        except InvalidJobOperation:
            return  # finished, and its hash already expired
        if job_status in (JobStatus.FINISHED, JobStatus.FAILED):
            return
        job.ended_at = now()
        killed = os.WIFSIGNALED(status)
        signal_msg = f" (signal {os.WTERMSIG(status)})" if killed else ""
        exc_string = (
            f"Work-horse terminated unexpectedly; waitpid returned {status}"
            f"{signal_msg}; "
        )
        self.handle_work_horse_killed(job, pid, status, None)
        self.handle_job_failure(job, queue=queue, exc_string=exc_string)

    def _settle(self, slot: Slot, record: Any) -> None:
        """Record a slot's outcome with RQ's handlers, which read the
        worker's one `execution`: it is the slot's for the while."""
        self._slots.pop(slot.job_id, None)
        self.execution = slot.execution
        try:
            record(slot.job, slot.queue)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # Left in the started registry: recovered as a lost worker's job.
            self.log.warning(
                "redis unavailable as a job ended; waiting for it",
                extra={"worker": self.name, "job_id": slot.job_id, "error": str(exc)},
            )
            self._wait_for_redis()
        finally:
            self.execution = None

    # -- RQ's commands ------------------------------------------------------

    def handle_payload(self, message: Any) -> None:
        """RQ's commands (from `rq`, rq-dashboard...), for N jobs: `stop-job`
        stops the job it names, and only it. RQ's own would kill "the horse",
        which here is pid 0: the worker's own process group. Runs in the
        command channel's thread: it only flags and signals."""
        try:
            payload = parse_payload(message)
            command = payload.get("command")
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            return  # not a command: anyone may publish on the channel
        if command == "stop-job":
            self._stop_job(str(payload.get("job_id") or ""))
        elif command == "kill-horse":
            self.log.info("kill-horse ignored: stop jobs by id (stop-job)")
        else:
            super().handle_payload(message)

    def _stop_job(self, job_id: str) -> None:
        slot = self._slots.get(job_id)
        if slot is None or slot.child is not None:
            self._stop_in_job_process(job_id)
            return
        slot.stopped = True
        if slot.pid:
            _kill_group(slot.pid)
        self._wake_up()

    def _stop_in_job_process(self, job_id: str) -> None:
        """The process model: the worker's slots lag behind its job processes
        (one that ends a job takes the next itself and says so on a pipe read
        as the worker tends its slots), so the job processes' own Running is
        asked which one runs the job now; that one is killed, under its lock,
        and the job recorded as stopped, not lost, when the worker meets that
        job process's end (_reap_process)."""
        for child in [c for c in self._children if c.busy]:
            with child.running.holding(job_id) as running:
                if running:
                    self._stopping.add(job_id)
                    _kill_group(child.pid)
            if running:
                self.log.info(
                    "stop-job: stopped in its job process",
                    extra={"job_id": job_id, "pid": child.pid},
                )
                self._wake_up()
                return
        self.log.info("stop-job: not running here", extra={"job_id": job_id})

    def kill_horse(self, sig: Any = None) -> None:
        """There is no one horse: jobs are stopped by id (stop-job)."""

    # -- stopping -----------------------------------------------------------

    def _abandoned_alive(self) -> bool:
        """Timed-out threads still running: no new job starts meanwhile."""
        self._abandoned = [(t, at) for t, at in self._abandoned if t.is_alive()]
        return bool(self._abandoned)

    def _abandoned_for_good(self) -> bool:
        moment = time.monotonic()
        return all(moment - at > STOP_GRACE for _, at in self._abandoned)

    def _start_afresh(self) -> None:
        """Only abandoned threads are left: leave the registry and exec the
        same command again (a new process image, same pid), or stop."""
        self.log.warning(
            "a timed-out job thread would not stop; starting afresh",
            extra={"worker": self.name, "threads": len(self._abandoned)},
        )
        self._stop_requested = True
        self._gate.set(False)
        if self.restart_argv is None:
            return
        self.teardown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(self.restart_argv[0], self.restart_argv)

    def _shutdown(self) -> None:
        """Warm shutdown: no new job; the running ones finish (teardown waits
        for them). Never raises from the signal handler: the loop, which looks
        at _stop_requested every few tens of ms, ends itself."""
        self._stop_requested = True
        self._gate.set(False)
        with contextlib.suppress(redis.exceptions.RedisError):
            self.set_shutdown_requested_date()
        if self.scheduler:
            self.stop_scheduler()
        self._wake_up()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Cold shutdown: every job process goes down with the worker; thread
        jobs end with the process. Their executions stay in the started
        registry and are recovered as a lost worker's jobs."""
        moment = now()
        requested = self._shutdown_requested_date
        if requested is not None and (moment - requested).total_seconds() < 1:
            return  # RQ: the pool and the terminal both signal once
        self.log.warning("cold shut down", extra={"worker": self.name})
        self._cold = True
        for pid in self._job_process_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        raise SystemExit()

    def _job_process_pids(self) -> set[int]:
        """Its job processes: the forked ones running jobs, the long-lived ones."""
        pids = {slot.pid for slot in self._slots.values() if slot.pid}
        return pids | {child.pid for child in self._children}

    def teardown(self) -> None:
        """Warm shutdown finishes every running job first."""
        if not self.is_horse and not self._cold:
            while self._slots:
                with self._tolerating_redis_loss("shutdown"):
                    self._tend()
                if self._slots:
                    self._nap()
            for child in list(self._children):  # idle now: EOF ends each
                self._drop_child(child)
        super().teardown()
