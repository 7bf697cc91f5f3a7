"""Reads for the Failures screen: dead and retrying jobs grouped by cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Max, Q
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


_TABLE = JobRecord._meta.db_table
_FAILING = ", ".join(f"'{status.value}'" for status in FAILING)
_GROUP = ("status", "task", "error_type", "error_fingerprint")
_SEEN = 'COALESCE(j."finished_at", j."started_at", j."submitted_at")'
_ID = 'j."id"'
_SAME_GROUP = " AND ".join(
    [f'j."{c}" = g."{c}"' for c in _GROUP] + [f'j."status" IN ({_FAILING})']
)


def _seek(what: str, order: str) -> str:
    return (
        f'(SELECT {what} FROM "{_TABLE}" j WHERE {_SAME_GROUP} '
        f"ORDER BY {order} LIMIT 1)"
    )


_COLUMNS = ", ".join(f'"{c}"' for c in _GROUP)
_G_COLUMNS = ", ".join(f'g."{c}"' for c in _GROUP)
#: One row per status and group: its count from the partial index
#: jobs_failure_groups (read once, in index order), then its first and last
#: failure and latest job by a seek into that index (not an aggregate over
#: every failing row). The statuses are literals: SQLite cannot prove a partial
#: index's condition from bound parameters.
GROUPS_SQL = (
    f"SELECT {_G_COLUMNS}, g.n, "
    f"{_seek(_SEEN, _SEEN)} AS first_seen, "
    f"{_seek(_SEEN, _SEEN + ' DESC')} AS last_seen, "
    f"{_seek(_ID, _SEEN + ' DESC, ' + _ID + ' DESC')} AS example_job "
    f'FROM (SELECT {_COLUMNS}, COUNT(*) AS n FROM "{_TABLE}" '
    f'WHERE "status" IN ({_FAILING}) GROUP BY {_COLUMNS}) g'
)


@dataclass
class _Merged:
    """A group's statuses added up."""

    task: str
    error_type: str
    fingerprint: str
    dead: int = 0
    retrying: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example_job: str = ""

    def add(
        self, status: str, n: int, first: datetime, last: datetime, job: str
    ) -> None:
        if status == Status.DEAD:
            self.dead += n
        else:
            self.retrying += n
        self.first_seen = min(first, self.first_seen or first)
        if self.last_seen is None or (last, job) > (self.last_seen, self.example_job):
            self.last_seen, self.example_job = last, job


def _groups() -> list[_Merged]:
    """Every group, the most recently failing first."""
    parse = JobRecord._meta.get_field("finished_at").to_python
    merged: dict[tuple[str, str, str], _Merged] = {}
    with connection.cursor() as cursor:
        cursor.execute(GROUPS_SQL)
        for status, task, error_type, fp, n, first, last, job in cursor.fetchall():
            group = merged.setdefault(
                (task, error_type, fp), _Merged(task, error_type, fp)
            )
            group.add(status, n, _aware(parse(first)), _aware(parse(last)), job)
    ordered = sorted(merged.values(), key=lambda g: (g.task, g.fingerprint))
    return sorted(ordered, key=lambda g: g.last_seen or _EPOCH, reverse=True)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive UTC text through a raw cursor."""
    return timezone.make_aware(value, UTC) if timezone.is_naive(value) else value


def failure_board(*, limit: int = GROUP_LIMIT) -> FailureBoard:
    """The most recently failing groups, each with its latest failure."""
    found = _groups()
    shown = found[:limit]
    examples = _latest_failures([group.example_job for group in shown])
    groups = []
    for group in shown:
        attempt = examples.get(group.example_job)
        groups.append(
            FailureGroup(
                task=group.task,
                error_type=group.error_type,
                fingerprint=group.fingerprint,
                dead=group.dead,
                retrying=group.retrying,
                first_seen=group.first_seen,
                last_seen=group.last_seen,
                example_job=group.example_job,
                example_attempt=attempt.number if attempt else 0,
                message=attempt.exc_message if attempt else "",
                traceback=attempt.traceback if attempt else "",
            )
        )
    return FailureBoard(groups, len(found) > limit, timezone.now())


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
