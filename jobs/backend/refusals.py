"""Jobs the console will not run: foreign ones and ones it cannot read.

Part of the RQ adapter. A job that another client wrote (a plain `rq`
producer's pickled or JSON job, a hash rq-dashboard rewrote) is failed at
once, for good, in the worker's own process: it is never forked for, never
retried, and its "refused" event lets the recorder write its history (a
foreign job gets a record of its own). The worker, the recovery sweep and
reconciliation all refuse through here, so the outcome is the same
whichever meets the job first.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.utils import current_timestamp

from jobs import events, stats
from jobs.backend import jobhash
from jobs.backend.queueing import FAILURE_TTL, ConsoleJob, fetch, rq_queue
from jobs.backend.queues import lanes, logical_queue

log = logging.getLogger("jobs.worker")


def refuse(
    job: ConsoleJob, queue: Queue, *, worker: str = "", host: str = "", pipe: Any
) -> None:
    """Queue the writes that fail `job` for good into `pipe` (the caller
    executes it, then calls release_dependents). `queue` is the lane the job
    was found in: its own `origin` field may be what cannot be read."""
    now = time.time()
    verdict = job.verdict
    reason = job.refusal
    lane = queue.name
    failed = rq_queue(lane, queue.connection).failed_job_registry.key
    pipe.hset(
        job.key,
        mapping={
            "status": JobStatus.FAILED,
            "ended_at": datetime.fromtimestamp(now, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
            "exc_info": reason,
            "worker_name": worker,
        },
    )
    pipe.expire(job.key, FAILURE_TTL)
    pipe.lrem(queue.intermediate_queue_key, 1, job.id)
    pipe.zadd(failed, {job.id: now + FAILURE_TTL})
    Result.create_failure(job, FAILURE_TTL, reason, worker_name=worker, pipeline=pipe)
    pipe.xadd(
        events.STREAM,
        events.fields(
            events.Kind.REFUSED,
            job.id,
            at=now,
            queue=logical_queue(lane),
            function=verdict.function,
            task=verdict.task,
            exc_type=verdict.exc_type or jobhash.UNDECODABLE,
            message=reason,
            arguments=verdict.arguments,
            created=job.created_at.timestamp() if job.created_at else None,
            worker=worker,
            host=host,
        ),
    )
    stats.count_outcome(
        pipe,
        queue=logical_queue(lane),
        task=verdict.label,
        outcome="dead",
        duration=None,
        at=now,
    )
    log.warning(
        "job refused",
        extra={
            "job_id": job.id,
            "queue": logical_queue(lane),
            "function": verdict.function,
            "error": reason,
            "worker": worker,
        },
    )


def release_dependents(job: Job, queue: Queue) -> None:
    """Children that may run after a failed parent are released, as RQ does
    for any failed job; a child another client wrote is refused later."""
    with suppress(Exception):  # a dependent's hash may be anything
        queue.enqueue_dependents(job)


def refuse_now(job_ids: list[str]) -> list[str]:
    """Refuse these jobs where Redis holds them now, if they still cannot be
    read (reconciliation's repair); returns the ids refused."""
    client = rq_queue("default").connection
    done: list[str] = []
    for job_id in job_ids:
        try:
            job = fetch(job_id, client)
        except Exception:  # noqa: BLE001 - gone meanwhile: nothing to refuse
            continue
        if not job.refusal or job.get_status(refresh=False) == JobStatus.FAILED:
            continue
        queue = rq_queue(_lane(job.origin), client)
        with client.pipeline() as pipe:
            pipe.lrem(queue.key, 0, job.id)
            for registry in (queue.scheduled_job_registry, queue.deferred_job_registry):
                pipe.zrem(registry.key, job.id)
            refuse(job, queue, worker="reconcile", pipe=pipe)
            pipe.execute()
        release_dependents(job, queue)
        done.append(job_id)
    return done


def _lane(origin: str) -> str:
    """The job's lane if it names one of ours, else the default queue's."""
    known = {name for queue in settings.JOB_QUEUES for name in lanes(queue)}
    return origin if origin in known else "default"


class CarefulScheduler(RQScheduler):
    """RQ's scheduler (the one `rqworker --with-scheduler` runs), moving due
    jobs to their queues as RQ does, except that a job it cannot read is
    refused there: RQ's own would raise on it, and a scheduler that dies on
    one job strands every retry and delayed job behind it."""

    def enqueue_scheduled_jobs(self) -> None:
        self._status = self.Status.WORKING
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        for registry in self._scheduled_job_registries:
            job_ids = registry.get_jobs_to_schedule(current_timestamp())
            if not job_ids:
                continue
            queue = rq_queue(registry.name, self.connection)
            jobs = ConsoleJob.fetch_many(job_ids, connection=self.connection)
            with self.connection.pipeline() as pipe:
                for job in jobs:
                    if isinstance(job, ConsoleJob) and job.refusal:
                        refuse(job, queue, worker="scheduler", pipe=pipe)
                    elif job is not None:
                        at_front = job.should_enqueue_at_front()
                        queue._enqueue_job(job, pipeline=pipe, at_front=at_front)
                for job_id in job_ids:
                    registry.remove(job_id, pipeline=pipe)
                pipe.execute()
        self._status = self.Status.STARTED
