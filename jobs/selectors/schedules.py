"""Reads for schedules: lists with last and next runs and their outcome."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobs.models import Schedule


def schedules() -> QuerySet[Schedule]:
    return Schedule.objects.select_related("last_job").order_by("name")


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    last_job = schedule.last_job
    return {
        "name": schedule.name,
        "task": schedule.task,
        "payload": schedule.payload,
        "queue": schedule.queue or None,
        "priority": schedule.priority or None,
        "every": schedule.every,
        "cron": schedule.cron or None,
        "timezone": schedule.timezone,
        "interval_seconds": schedule.interval_seconds,
        "enabled": schedule.enabled,
        "catch_up": schedule.catch_up,
        "next_run_at": schedule.next_run_at.isoformat()
        if schedule.next_run_at
        else None,
        "last_run_at": schedule.last_run_at.isoformat()
        if schedule.last_run_at
        else None,
        "last_outcome": schedule.last_outcome or None,
        "last_job": last_job.pk if last_job else None,
        "last_job_status": last_job.status if last_job else None,
    }
