"""The scheduler process: rq-scheduler's loop and lock, with our firings.

`python manage.py rqscheduler` runs ConsoleScheduler (settings RQ
SCHEDULER_CLASS). On start it reconciles Redis with the database, so a
schedule edited while it was down is right when it comes back. Each due entry
is fired through services.schedule_fire (exactly once per fire time).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from jobs.backend import scheduler, scheduling
from jobs.models import Schedule
from jobs.services.schedules import schedule_fire

log = logging.getLogger("jobs.schedules")
#: A firing later than this is "missed" (everything was down), not just late.
MISSED_AFTER = 30.0
HEARTBEAT_KEY = scheduler.HEARTBEAT_KEY


def reconcile() -> tuple[int, int]:
    """Make rq-scheduler's entries match the database; returns (put, removed)."""
    wanted: dict[int, datetime] = {}
    for schedule in Schedule.objects.filter(enabled=True):
        due = schedule.next_run_at or schedule.next_after(timezone.now())
        if due is not None:
            wanted[schedule.pk] = due
    present = scheduling.entries()
    for pk in present.keys() - wanted.keys():
        scheduling.remove(pk)
    for pk, due in wanted.items():
        if present.get(pk) != due:
            scheduling.put(pk, due)
    return len(wanted), len(present.keys() - wanted.keys())


def fire_due(entry_id: str, due: datetime, now: float | None = None) -> None:
    pk = scheduling.schedule_id(entry_id)
    schedule = Schedule.objects.filter(pk=pk).first() if pk is not None else None
    if schedule is None or not schedule.enabled:
        if pk is not None:
            scheduling.remove(pk)
        return
    late = (time.time() if now is None else now) - due.timestamp()
    run = late <= MISSED_AFTER or schedule.catch_up
    following = schedule_fire(schedule=schedule, due=due, run=run)
    log.info(
        "schedule fired" if run else "missed firing skipped",
        extra={
            "schedule": schedule.name,
            "due": due.isoformat(),
            "late_seconds": round(late, 3),
            "next": following.isoformat() if following else None,
        },
    )
    if following is None:
        scheduling.remove(schedule.pk)
    else:
        scheduling.put(schedule.pk, following)


class ConsoleScheduler(scheduler.SchedulerLoop):
    def started(self) -> None:
        put, removed = reconcile()
        log.info(
            "scheduler reconciled with the database",
            extra={"schedules": put, "removed": removed},
        )

    def enqueue_jobs(self) -> list[Any]:
        close_old_connections()
        return super().enqueue_jobs()

    def fire(self, entry: str, due: datetime) -> None:
        fire_due(entry, due)
