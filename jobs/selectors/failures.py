"""Reads for the Failures screen: dead and retrying jobs grouped by cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.models import Attempt, JobRecord
from jobs.selectors.history import JobFilter

Status = JobRecord.Status
FAILING = (Status.DEAD, Status.RETRYING)
#: Groups shown at once: the board is re-read every 2 s while it is open.
GROUP_LIMIT = 100


@dataclass(frozen=True)
class FailureGroup:
    """Jobs of one task failing with one exception type and (normalised) message."""

    task: str
    error_type: str
    fingerprint: str
    dead: int
    retrying: int
    first_seen: datetime | None
    last_seen: datetime | None
    example_job: str
    example_attempt: int = 0
    message: str = ""
    traceback: str = ""

    @property
    def count(self) -> int:
        return self.dead + self.retrying

    @property
    def key(self) -> str:
        """The group in a URL (a failure recorded without a fingerprint has none)."""
        return self.fingerprint or JobFilter.NO_FINGERPRINT

    def jobs_query(self, status: str) -> str:
        """Query string of the Jobs list showing this group's jobs in a status."""
        return urlencode({"status": status, "task": self.task, "fingerprint": self.key})

    @property
    def dead_query(self) -> str:
        return self.jobs_query(Status.DEAD)

    @property
    def retrying_query(self) -> str:
        return self.jobs_query(Status.RETRYING)


@dataclass(frozen=True)
class FailureBoard:
    groups: list[FailureGroup]
    truncated: bool
    read_at: datetime


def failure_board(*, limit: int = GROUP_LIMIT) -> FailureBoard:
    """The most recently failing groups, each with one example failure."""
    seen = Coalesce("finished_at", "started_at", "submitted_at")
    rows = list(
        JobRecord.objects.filter(status__in=FAILING)
        .values("task", "error_type", "error_fingerprint")
        .annotate(
            dead=Count("pk", filter=Q(status=Status.DEAD)),
            retrying=Count("pk", filter=Q(status=Status.RETRYING)),
            first_seen=Min(seen),
            last_seen=Max(seen),
            example_job=Max("pk"),
        )
        .order_by("-last_seen", "task", "error_fingerprint")[: limit + 1]
    )
    examples = _latest_failures([row["example_job"] for row in rows[:limit]])
    groups = []
    for row in rows[:limit]:
        attempt = examples.get(row["example_job"])
        groups.append(
            FailureGroup(
                task=row["task"],
                error_type=row["error_type"],
                fingerprint=row["error_fingerprint"],
                dead=row["dead"],
                retrying=row["retrying"],
                first_seen=row["first_seen"],
                last_seen=row["last_seen"],
                example_job=row["example_job"],
                example_attempt=attempt.number if attempt else 0,
                message=attempt.exc_message if attempt else "",
                traceback=attempt.traceback if attempt else "",
            )
        )
    return FailureBoard(groups, len(rows) > limit, timezone.now())


def _latest_failures(job_ids: list[str]) -> dict[str, Attempt]:
    """The last failed (or lost) attempt of each job, in two queries."""
    failed = Attempt.objects.filter(
        job_id__in=job_ids,
        outcome__in=(Attempt.Outcome.FAILED, Attempt.Outcome.LOST),
    )
    latest = list(failed.values("job_id").annotate(last=Max("number")))
    if not latest:
        return {}
    wanted = Q()
    for row in latest:
        wanted |= Q(job_id=row["job_id"], number=row["last"])
    return {attempt.job_id: attempt for attempt in failed.filter(wanted)}


def failure_group_filter(key: str, task: str = "") -> JobFilter:
    """The dead jobs of one group, as a Jobs-list filter (bulk actions re-run it)."""
    return JobFilter(status=Status.DEAD, task=task.strip()[:200], fingerprint=key)


def failure_group_label(job_filter: JobFilter) -> str:
    """The group as the operator log shows it: task, exception and message."""
    example = (
        job_filter.apply(JobRecord.objects.all())
        .values("task", "error_type", "last_error")
        .first()
    )
    if example is None:
        return f"failure group {job_filter.fingerprint}"
    message = example["last_error"].split("\n")[0][:80]
    return (
        f"failure group {example['task']} {example['error_type']}: {message} "
        f"({job_filter.fingerprint[:12]})"
    )
