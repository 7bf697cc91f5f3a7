"""rq-scheduler's side of schedules: when each schedule is next due.

Part of the RQ adapter. rq-scheduler keeps a sorted set of job ids scored by
due time, plus one job hash per id; each schedule has one entry,
`schedule-<pk>`, whose job is a placeholder: the firing itself goes through
job_submit (see jobs/processes/schedules.py), never through this job.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django_rq.queues import DjangoScheduler
from rq_scheduler import Scheduler

from jobs.backend.queueing import (
    RUNNER,
    ConsoleJob,
    connection,
    wait_for_redis,
    worker_connection,
)

KEY = Scheduler.scheduled_jobs_key
PREFIX = "schedule-"
#: When the scheduler process last said it was alive (read by the alerts).
HEARTBEAT_KEY = "console:scheduler:seen"


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


class SchedulerLoop(DjangoScheduler):
    """rq-scheduler's process (its lock, heartbeat and interval) on the app's
    client; a subclass says what starting and a due entry mean
    (jobs.processes.schedules.ConsoleScheduler, settings RQ SCHEDULER_CLASS).
    """

    def __init__(self, *args: Any, connection: Any = None, **kwargs: Any) -> None:
        # django-rq's connection, made the app's client (and its errors).
        if connection is not None:
            connection = worker_connection(connection)
        super().__init__(*args, connection=connection, **kwargs)

    def started(self) -> None:
        """Called once Redis answers, before the first due entry is read."""

    def fire(self, entry: str, due: datetime) -> None:
        raise NotImplementedError

    def run(self, burst: bool = False) -> None:
        wait_for_redis(self.connection)
        self.started()
        super().run(burst=burst)

    def heartbeat(self) -> None:
        super().heartbeat()
        self.connection.set(HEARTBEAT_KEY, repr(time.time()), ex=3600)

    def enqueue_jobs(self) -> list[Any]:
        due_now = list(
            self.connection.zrangebyscore(
                self.scheduled_jobs_key, 0, time.time(), withscores=True
            )
        )
        for raw, score in due_now:
            self.fire(raw.decode(), datetime.fromtimestamp(score, UTC))
        return due_now
