"""Cancelling jobs in Redis: a waiting job's cancel, and the claim and stop-job
command that stop a running one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rq.command import send_command, send_stop_job_command
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from jobs.backend import jobhash
from jobs.backend.connect import connection
from jobs.backend.queueing import ConsoleJob


def cancel(job_ids: Iterable[str]) -> set[str]:
    """Cancel jobs that are waiting in Redis; returns the ids it canceled."""
    done: set[str] = set()
    for job_id in job_ids:
        try:
            job = ConsoleJob.fetch(job_id, connection=connection())
        except Exception:  # noqa: BLE001 - gone from Redis: nothing to stop
            done.add(job_id)
            continue
        if job.get_status() in (JobStatus.STARTED, JobStatus.FINISHED):
            continue
        if job.get_status() != JobStatus.CANCELED:
            job.cancel()
        done.add(job_id)
    return done


#: Claims a running job for an operator's cancel, atomically against its own
#: end: only a job whose hash still says "started" is claimed. Returns
#: [its status or false, its worker's name or false].
CLAIM_RUNNING = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'started' then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
return {status, redis.call('HGET', KEYS[1], 'worker_name')}
"""


#: How long a cancel's claim outlives the request (the job's end, or its lost
#: worker's recovery, reads it well before).
CANCEL_CLAIM_TTL = 7 * 24 * 3600


def _cancel_key(job_id: str) -> str:
    return f"console:cancel:{job_id}"


@dataclass(frozen=True)
class Stop:
    """What stop_running found: "stopping" (claimed, the stop sent), "gone"
    (no job in Redis: nothing runs it), or the job's RQ status ("finished",
    "failed"...: it ended first, or never started)."""

    job_id: str
    outcome: str


def stop_running(job_id: str, *, by: str = "") -> Stop:
    """Cancel a running job: claim it (so its end, or its lost worker's
    recovery, records it as canceled and never runs it again) and send RQ's
    stop-job command to its worker, which kills just that job."""
    client = connection()
    status, worker = client.eval(
        CLAIM_RUNNING,
        2,
        Job.key_for(job_id),
        _cancel_key(job_id),
        (by or "an operator")[:150],
        CANCEL_CLAIM_TTL,
    )
    if status is None:
        return Stop(job_id, "gone")
    status = jobhash.text(status)
    if status != JobStatus.STARTED:
        return Stop(job_id, status)
    try:
        send_stop_job_command(client, job_id, serializer=JSONSerializer)
    except Exception:  # noqa: BLE001 - unreadable (another client's) or no worker name
        if worker:  # the name Redis holds is enough to address the command
            send_command(client, jobhash.text(worker), "stop-job", job_id=job_id)
    return Stop(job_id, "stopping")


def cancel_requested(job_id: str, client: Any = None) -> str | None:
    """Who canceled this running job (stop_running's claim), if anyone."""
    raw = (client or connection()).get(_cancel_key(job_id))
    return jobhash.text(raw)[:150] if raw is not None else None
