"""Reads: job lists, search, details and timelines. Nothing here writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import make_aware

from jobs.models import Attempt, JobEvent, JobRecord


@dataclass
class JobFilter:
    """Search over the durable history; built from a query string or CLI flags."""

    status: str = ""
    queue: str = ""
    task: str = ""
    payload: str = ""
    error: str = ""
    since: datetime | None = None
    until: datetime | None = None
    submitted_by: str = ""
    problems: list[str] = field(default_factory=list)

    FIELDS = (
        "status",
        "queue",
        "task",
        "payload",
        "error",
        "since",
        "until",
        "submitted_by",
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobFilter:
        """Unknown or malformed values are dropped and listed in `problems`."""
        found = cls()
        for name in ("queue", "task", "payload", "error", "submitted_by"):
            setattr(found, name, str(data.get(name) or "").strip()[:200])
        status = str(data.get("status") or "").strip()
        if status and status not in JobRecord.Status.values:
            found.problems.append(f"unknown status {status!r} ignored")
        else:
            found.status = status
        for name in ("since", "until"):
            raw = str(data.get(name) or "").strip()
            if raw:
                parsed = parse_when(raw)
                if parsed is None:
                    found.problems.append(f"{name}: {raw!r} is not a date; ignored")
                setattr(found, name, parsed)
        return found

    def apply(self, rows: QuerySet[JobRecord]) -> QuerySet[JobRecord]:
        if self.status:
            rows = rows.filter(status=self.status)
        if self.queue:
            rows = rows.filter(queue=self.queue)
        if self.task:
            rows = rows.filter(task=self.task)
        if self.payload:
            rows = rows.filter(payload__icontains=self.payload)
        if self.error:
            rows = rows.filter(last_error__icontains=self.error)
        if self.since:
            rows = rows.filter(submitted_at__gte=self.since)
        if self.until:
            rows = rows.filter(submitted_at__lt=self.until)
        if self.submitted_by:
            rows = rows.filter(submitted_by__username=self.submitted_by)
        return rows

    def as_query(self) -> dict[str, str]:
        query = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value:
                query[name] = (
                    value.isoformat() if isinstance(value, datetime) else value
                )
        return query


def parse_when(raw: str) -> datetime | None:
    try:
        parsed = parse_datetime(raw)
        if parsed is None:
            day = parse_date(raw)
            parsed = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = make_aware(parsed)
    return parsed


def job_search(job_filter: JobFilter) -> QuerySet[JobRecord]:
    return job_filter.apply(JobRecord.objects.all()).order_by("-submitted_at")


def job_json(record: JobRecord) -> dict[str, Any]:
    """The stable JSON shape of a job (CLI --json and the API)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": record.pk,
        "task": record.task,
        "queue": record.queue,
        "priority": record.priority,
        "status": record.status,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "worker_name": record.worker_name or None,
        "worker_pid": record.worker_pid
        if record.status == JobRecord.Status.STARTED
        else None,
        "origin": record.origin,
        "submitted_by": record.submitted_by.get_username()
        if record.submitted_by_id and record.submitted_by
        else None,
        "submitted_at": when(record.submitted_at),
        "run_at": when(record.run_at),
        "enqueued_at": when(record.enqueued_at),
        "started_at": when(record.started_at),
        "finished_at": when(record.finished_at),
        "next_attempt_at": when(record.next_attempt_at),
        "payload": record.payload,
        "result": record.result,
        "error_type": record.error_type or None,
        "last_error": record.last_error or None,
        "idempotency_key": record.idempotency_key,
    }


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    label: str
    message: str
    actor: str


def timeline(record: JobRecord) -> list[TimelineEntry]:
    """Submission (from the record itself) then every recorded event."""
    who = record.submitted_by.get_username() if record.submitted_by else ""
    entries = [
        TimelineEntry(
            record.submitted_at,
            "submitted",
            "Submitted",
            f"from {record.get_origin_display().lower()}",
            who,
        )
    ]
    for event in JobEvent.objects.filter(job=record).select_related("actor"):
        entries.append(
            TimelineEntry(
                event.at,
                event.kind,
                event.get_kind_display(),
                event.message,
                event.actor.get_username() if event.actor else "",
            )
        )
    return entries


def attempts(record: JobRecord) -> QuerySet[Attempt]:
    return Attempt.objects.filter(job=record).order_by("number")
