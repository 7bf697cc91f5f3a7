"""Reads for the scheduled screen: delayed and retry-waiting jobs, from Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from jobs.backend import live
from jobs.backend.errors import BackendError
from jobs.models import JobRecord
from jobs.selectors.job_page import RUNNABLE_NOW, relative


@dataclass(frozen=True)
class ScheduledRow:
    job_id: str
    due: datetime
    due_in: str
    overdue: bool
    #: None when Redis holds a job the history does not know (submitted
    #: outside the console, or its record was purged).
    job: JobRecord | None

    @property
    def runnable(self) -> bool:
        return self.job is not None and self.job.status in RUNNABLE_NOW


@dataclass(frozen=True)
class ScheduledList:
    rows: list[ScheduledRow]
    limit: int
    now: datetime
    #: False when Redis could not be read: the screen says so.
    available: bool = True

    @property
    def truncated(self) -> bool:
        return len(self.rows) >= self.limit


def scheduled_list(queues: list[str], limit: int) -> ScheduledList:
    """The soonest `limit` jobs due across `queues`, joined to their history."""
    now = timezone.now()
    try:
        due = live.scheduled_jobs(queues, limit=limit)
    except BackendError:
        return ScheduledList([], limit, now, available=False)
    records = JobRecord.objects.in_bulk([job_id for job_id, _ in due])
    rows = [
        ScheduledRow(job_id, at, relative(at, now), at <= now, records.get(job_id))
        for job_id, at in due
    ]
    return ScheduledList(rows, limit, now)
