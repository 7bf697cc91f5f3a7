"""The worker classes: RQ workers that record every attempt and retry with backoff
(RecordingMixin, jobs/backend/recording.py, on UpkeepMixin, jobs/backend/upkeep.py),
and the forking worker's lease on its job (jobs/backend/lease.py)."""

from __future__ import annotations

import time
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from jobs.backend import connect, jobconn
from jobs.backend.forking import (
    die_with_parent,
    forget_inherited_db_connections,
    prepare_to_fork,
)
from jobs.backend.lease import (
    HEARTBEAT_GRACE,
    JOB_MONITORING_INTERVAL,
    Lease,
    LeaseLost,
    until_redis_answers,
)
from jobs.backend.recording import RecordingMixin


class ConsoleWorker(RecordingMixin, Worker):
    """The default worker: one forked process per job (isolation)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["job_monitoring_interval"] = JOB_MONITORING_INTERVAL
        super().__init__(*args, **kwargs)
        #: Connections lent to job processes (jobs/backend/jobconn.py).
        self._spares = jobconn.Spares(self.connection)
        #: The spare of the job process about to be forked (in it: its own).
        self._job_spare: jobconn.Spare | None = None
        #: The wait status of the last job process reaped (one-job worker).
        self._horse_status: int | None = None

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        prepare_to_fork()
        self._spares.prime()

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
        self._horse_status = None
        self._job_spare = self._spares.take()
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

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        pid, status, rusage = super().wait_for_horse()
        if pid:
            self._horse_status = status
        return pid, status, rusage

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            lease, self._lease = getattr(self, "_lease", None), None
            if lease is not None:
                lease.end()
            spare, self._job_spare = self._job_spare, None
            # Not reaped (the worker gave up on it): its status is unknown.
            self._spares.give_back(spare, self._horse_status)

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
        if (
            job.get_status(refresh=False) != JobStatus.FAILED
            and job.success_callback is None
            and job.get_result_ttl(self.default_result_ttl) != 0
        ):
            # RQ's heartbeat here covers the success callback; with none, the
            # success pipeline follows at once and its save of the job hash
            # writes last_heartbeat: one round trip a job less.
            job.ended_at = now()
            job.last_heartbeat = job.ended_at
            return
        if job.get_status(refresh=False) == JobStatus.FAILED:
            # A failed attempt (its start may not even have been written) is
            # not waited for: this process ends and the attempt is recovered
            # as lost and run again at once, with no retry delay for RQ's
            # scheduler to honour (a failover ends the scheduler's process).
            super().handle_execution_ended(job, queue, heartbeat_ttl)
            return
        until_redis_answers(super().handle_execution_ended, job, queue, heartbeat_ttl)

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any
    ) -> None:
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        repeats = job.repeats_left is not None and job.repeats_left > 0
        if result_ttl == 0 or repeats:
            until_redis_answers(
                super().handle_job_success, job, queue, started_job_registry
            )
            return
        if until_redis_answers(self._record_success, job, queue, result_ttl):
            until_redis_answers(queue.enqueue_dependents, job)

    def _record_success(self, job: Job, queue: Queue, result_ttl: int) -> int:
        """RQ's handle_job_success (a copy, fingerprinted in
        tests/test_rq_contract.py) for a job whose result is kept and that
        does not repeat, but with its dependents counted inside its
        transaction rather than read under a WATCH before it: two round trips
        a job less. Returns how many dependents wait; the caller then
        enqueues them through RQ's enqueue_dependents (WATCH and all), as
        recovery and refusals do. A dependent added before the transaction
        is counted; one added after it finds its parent finished and is
        enqueued by its producer (RQ's enqueue watches the parent). A
        process-model job process also takes its next job in the transaction
        (SlotWorker._lanes_to_take_from)."""
        assert job.started_at is not None and job.ended_at is not None
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            execution = self.execution
            job._handle_success(
                result_ttl,
                pipeline=pipeline,
                worker_name=self.name,
                execution_id=execution.id if execution else None,
                execution_started_at=execution.created_at if execution else None,
                execution_ended_at=job.ended_at,
            )
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipeline)
            pipeline.scard(job.dependents_key)
            lanes = self._lanes_to_take_from()
            if lanes:
                self._pop_in(pipeline, lanes)
            replies = pipeline.execute()
        if lanes:
            found = replies.pop()
            by_key = {lane.key: lane for lane in lanes}
            self._took_in_transaction(found and self._popped(found, by_key))
        waiting = int(replies[-1] or 0)
        self.log.info(
            "Successfully completed job %s in %ss on worker %s",
            job.id,
            job.ended_at - job.started_at,
            self.name,
        )
        return waiting

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        die_with_parent()
        forget_inherited_db_connections()
        connect.mark_job_process()
        self._adopt_job_connection()
        super().main_work_horse(job, queue)

    def _adopt_job_connection(self) -> None:
        """In the job process: the connection the worker lent it becomes the
        worker client's (and connect.connection()'s) only one."""
        spare, self._job_spare = self._job_spare, None
        self._spares.forget()
        if spare is None:
            return  # redis-py connects afresh, as it would without a spare
        try:
            jobconn.adopt(self.connection, spare)
        except Exception:  # noqa: BLE001 - never fatal: the job connects itself
            self.log.exception("job connection not adopted")

    def perform_job(self, job: Job, queue: Queue) -> bool:
        """RQ's, then (in a job process that adopted its worker's connection)
        the connection vouched for or shut down (jobconn.vouch)."""
        try:
            return bool(super().perform_job(job, queue))
        finally:
            jobconn.vouch(self.connection)


class ConsoleSimpleWorker(RecordingMixin, SimpleWorker):
    """Runs jobs in the worker's own process: faster, no isolation."""
