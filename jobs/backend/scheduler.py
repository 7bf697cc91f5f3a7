"""rq-scheduler's process: its lock, heartbeat and interval, on the app's
client. What a due entry means is the subclass's (jobs.processes.schedules)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django_rq.queues import DjangoScheduler

from jobs.backend.connect import wait_for_redis, worker_connection

#: When the scheduler process last said it was alive (read by the alerts).
HEARTBEAT_KEY = "console:scheduler:seen"


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
