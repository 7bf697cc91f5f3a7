"""rq-scheduler's side of schedules: when each schedule is next due.

Part of the RQ adapter. rq-scheduler keeps a sorted set of job ids scored by
due time, plus one job hash per id; each schedule has one entry,
`schedule-<pk>`, whose job is a placeholder: the firing itself goes through
job_submit (see jobs/processes/schedules.py), never through this job.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rq_scheduler import Scheduler

from jobs.backend.connect import connection
from jobs.backend.queueing import RUNNER, ConsoleJob

KEY = Scheduler.scheduled_jobs_key
PREFIX = "schedule-"


def entry_id(schedule_id: int) -> str:
    return f"{PREFIX}{schedule_id}"


def schedule_id(entry: str) -> int | None:
    if not entry.startswith(PREFIX):
        return None
    try:
        return int(entry.removeprefix(PREFIX))
    except ValueError:
        return None


def put(schedule_pk: int, due: datetime) -> None:
    client = connection()
    job = ConsoleJob.create(
        RUNNER,
        kwargs={},
        id=entry_id(schedule_pk),
        connection=client,
        meta={"schedule": schedule_pk},
        description=f"schedule {schedule_pk}",
    )
    with client.pipeline() as pipe:
        job.save(pipeline=pipe)
        pipe.zadd(KEY, {job.id: due.timestamp()})
        pipe.execute()


def remove(schedule_pk: int) -> None:
    client = connection()
    with client.pipeline() as pipe:
        pipe.zrem(KEY, entry_id(schedule_pk))
        pipe.delete(ConsoleJob.key_for(entry_id(schedule_pk)))
        pipe.execute()


def entries() -> dict[int, datetime]:
    """Every schedule rq-scheduler knows, with its due time."""
    found: dict[int, datetime] = {}
    for raw, score in connection().zrange(KEY, 0, -1, withscores=True):
        pk = schedule_id(raw.decode())
        if pk is not None:
            found[pk] = datetime.fromtimestamp(score, UTC)
    return found
