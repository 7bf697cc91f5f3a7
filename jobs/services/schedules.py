"""Schedules: create, change, enable, disable, delete, run now, and fire.

The database is the source of truth; every change updates rq-scheduler's
entry after commit. A firing is a normal job_submit whose idempotency key is
the schedule and its fire time, so it happens once however many schedulers
run or restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import registry
from jobs.backend import scheduling
from jobs.models import JobRecord, Origin, Priority, Schedule
from jobs.services.control import audit
from jobs.services.submit import job_submit
from jobs.services.validation import InvalidInput, parse_payload, stored_payload

FIELDS = (
    "name",
    "task",
    "payload",
    "queue",
    "priority",
    "cron",
    "timezone",
    "interval_seconds",
    "start_at",
    "end_at",
    "enabled",
    "catch_up",
)


def schedule_validate(schedule: Schedule) -> None:
    """Raises InvalidInput naming the field; nothing is saved before this passes."""
    errors: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not schedule.name.strip():
        bad("name", "required")
    try:
        task = registry.get(schedule.task)
    except registry.UnknownTask as exc:
        bad("task", str(exc))
    else:
        try:
            stored_payload(task, parse_payload(schedule.payload))
        except InvalidInput as exc:
            for where, messages in exc.errors.items():
                for message in messages:
                    bad(where, message)
    if schedule.queue and schedule.queue not in settings.JOB_QUEUES:
        bad("queue", f"unknown queue {schedule.queue!r}")
    if schedule.priority and schedule.priority not in Priority.values:
        bad("priority", f"unknown priority {schedule.priority!r}")
    if bool(schedule.cron) == bool(schedule.interval_seconds is not None):
        bad("cron", "give either a cron expression or an interval, not both")
    if schedule.cron and not croniter.is_valid(schedule.cron):
        bad("cron", f"not a valid cron expression: {schedule.cron!r}")
    if schedule.interval_seconds is not None and schedule.interval_seconds <= 0:
        bad("interval_seconds", "must be a positive number of seconds")
    try:
        ZoneInfo(schedule.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        bad("timezone", f"unknown time zone {schedule.timezone!r}")
    if schedule.start_at and schedule.end_at and schedule.end_at <= schedule.start_at:
        bad("end_at", "must be after the start")
    if errors:
        raise InvalidInput(errors)


def _sync_after_commit(schedule: Schedule) -> None:
    pk, due, enabled = schedule.pk, schedule.next_run_at, schedule.enabled
    if enabled and due is not None:
        transaction.on_commit(lambda: scheduling.put(pk, due))
    else:
        transaction.on_commit(lambda: scheduling.remove(pk))


def _save(schedule: Schedule) -> Schedule:
    schedule_validate(schedule)
    schedule.next_run_at = (
        schedule.next_after(timezone.now()) if schedule.enabled else None
    )
    schedule.save()
    _sync_after_commit(schedule)
    return schedule


def _parse_payload(value: Any) -> Any:
    """JSON text (from a form or the CLI) to a dict; schedule_validate checks
    the rest, with the very checks a submission gets."""
    return parse_payload(value) if isinstance(value, str | bytes) else value


@transaction.atomic
def schedule_create(
    *, actor: Any, origin: str = Origin.CODE, **fields: Any
) -> Schedule:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidInput.one(sorted(unknown)[0], "unknown field")
    if "payload" in fields:
        fields["payload"] = _parse_payload(fields["payload"])
    if Schedule.objects.filter(name=fields.get("name", "")).exists():
        raise InvalidInput.one("name", "a schedule with this name exists")
    schedule = _save(Schedule(**fields))
    audit(
        actor=actor,
        action="schedule_create",
        target=f"schedule {schedule.name}",
        count=1,
        origin=origin,
    )
    return schedule


@transaction.atomic
def schedule_update(
    *, schedule: Schedule, actor: Any, origin: str = Origin.CODE, **fields: Any
) -> Schedule:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidInput.one(sorted(unknown)[0], "unknown field")
    if "payload" in fields:
        fields["payload"] = _parse_payload(fields["payload"])
    locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    _save(locked)
    audit(
        actor=actor,
        action="schedule_update",
        target=f"schedule {locked.name}",
        count=1,
        origin=origin,
        fields=sorted(fields),
    )
    return locked


def schedule_set_enabled(
    *, schedule: Schedule, enabled: bool, actor: Any, origin: str = Origin.CODE
) -> Schedule:
    return schedule_update(
        schedule=schedule, enabled=enabled, actor=actor, origin=origin
    )


@transaction.atomic
def schedule_delete(
    *, schedule: Schedule, actor: Any, origin: str = Origin.CODE
) -> None:
    pk, name = schedule.pk, schedule.name
    schedule.delete()
    transaction.on_commit(lambda: scheduling.remove(pk))
    audit(
        actor=actor,
        action="schedule_delete",
        target=f"schedule {name}",
        count=1,
        origin=origin,
    )


def _submit_for(
    schedule: Schedule, key: str | None, actor: Any, origin: str
) -> JobRecord:
    record = job_submit(
        task=schedule.task,
        payload=schedule.payload,
        queue=schedule.queue or None,
        priority=schedule.priority or None,
        idempotency_key=key,
        actor=actor,
        origin=origin,
    )
    JobRecord.objects.filter(pk=record.pk, schedule__isnull=True).update(
        schedule=schedule
    )
    return record


@transaction.atomic
def schedule_run_now(
    *, schedule: Schedule, actor: Any, origin: str = Origin.CODE
) -> JobRecord:
    """One job now; the next run stays where it was."""
    record = _submit_for(schedule, None, actor, origin)
    Schedule.objects.filter(pk=schedule.pk).update(
        last_run_at=timezone.now(), last_job=record, last_outcome="run now"
    )
    audit(
        actor=actor,
        action="schedule_run_now",
        target=f"schedule {schedule.name}",
        count=1,
        origin=origin,
        job=record.pk,
    )
    return record


@transaction.atomic
def schedule_fire(*, schedule: Schedule, due: datetime, run: bool) -> datetime | None:
    """Fire `schedule` for its due time (or skip a missed firing when `run` is
    False), record it, and return when it is next due (None: never again).

    The job's idempotency key is the schedule and the due time, so the same
    firing submitted twice (two schedulers, a restart) yields one job.
    """
    locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
    now = timezone.now()
    if run:
        key = f"schedule:{locked.pk}:{int(due.timestamp())}"
        record = _submit_for(locked, key, None, Origin.SCHEDULE)
        locked.last_job = record
        locked.last_outcome = "fired"
    else:
        locked.last_outcome = "skipped (missed while down)"
    locked.last_run_at = due
    locked.next_run_at = locked.next_after(now) if locked.enabled else None
    locked.save(
        update_fields=["last_job", "last_outcome", "last_run_at", "next_run_at"]
    )
    return locked.next_run_at
