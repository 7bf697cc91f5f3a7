"""Recovery of jobs whose worker died.

RQ has its own clean-up for a dead worker's job (StartedJobRegistry.cleanup,
run by every RQ worker at start-up and every 10 minutes, and by anything
that reads `registry.count`, such as `rq info`): it fails the job as
abandoned, with no retry (our jobs carry no RQ retry) and no event, so the
history would say "started" forever. Our workers run recover_abandoned in
its place; a job RQ failed anyway is adopted by the monitor's stranded
sweep (jobs/services/reconcile.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from rq.job import Job, JobStatus
from rq.queue import Queue

from jobs import events, stats
from jobs.backend import cancels, connect, jobhash, queueing, refusals
from jobs.backend.outcomes import CANCELED_TYPE
from jobs.backend.queueing import ConsoleJob, rq_queue
from jobs.backend.queues import lanes, logical_queue
from jobs.registry import RetryPolicy

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
    client = connect.connection()
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

log = logging.getLogger("jobs.worker")


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
    client = connect.connection()
    return [job_id for job_id in job_ids if _rq_abandoned(client, job_id)]


def adopt_abandoned(job_ids: list[str]) -> list[Recovered]:
    """Recover jobs RQ's clean-up failed as abandoned, as if we had found them
    first. Claimed per RQ failure record; a job that already waits in its
    queue or runs (we recovered it too, racing RQ) is left alone."""
    client = connect.connection()
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
    canceled_by = cancels.cancel_requested(job.id, client)
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
