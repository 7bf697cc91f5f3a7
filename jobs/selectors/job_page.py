"""Reads for the job page: one job, its attempts, timeline, links and progress."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from jobs.backend import progressstore
from jobs.backend.errors import BackendError
from jobs.models import Attempt, JobDependency, JobRecord
from jobs.selectors.history import TimelineEntry, attempts, timeline, with_rounds
from jobs.services import transitions

Status = JobRecord.Status

# The statuses each action applies to: the services' own (one definition).
RUNNABLE_NOW = transitions.RUNNABLE_NOW


def relative(moment: datetime, now: datetime) -> str:
    """ "3 min ago" or "in 3 min": short, and right on both sides of now."""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 1:
        return "now"
    if span < 60:
        text = f"{span:.0f} s"
    elif span < 3600:
        text = f"{span // 60:.0f} min"
    elif span < 86400:
        hours, rest = divmod(span, 3600)
        text = f"{hours:.0f} h {rest // 60:.0f} min" if rest >= 60 else f"{hours:.0f} h"
    else:
        days = span // 86400
        text = f"{days:.0f} day{'s' if days != 1 else ''}"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@dataclass(frozen=True)
class Moment:
    """A timestamp shown as relative text with the absolute time beside it."""

    label: str
    at: datetime
    relative: str


@dataclass(frozen=True)
class Link:
    """A parent or child job, with what the dependency means for this job."""

    job: JobRecord
    allow_failure: bool
    blocking: bool


@dataclass(frozen=True)
class Step:
    """A timeline entry with how long after submission it happened."""

    entry: TimelineEntry
    offset: str


@dataclass(frozen=True)
class LogLine:
    at: datetime
    msg: str


@dataclass(frozen=True)
class Progress:
    percent: float | None
    lines: list[LogLine]
    #: False when Redis could not be read: the page says so instead of failing.
    available: bool = True

    @property
    def shown(self) -> bool:
        return self.percent is not None or bool(self.lines) or not self.available


@dataclass(frozen=True)
class Actions:
    retry: bool
    cancel: bool
    delete: bool
    run_now: bool

    @property
    def any(self) -> bool:
        return self.retry or self.cancel or self.delete or self.run_now


@dataclass(frozen=True)
class JobPage:
    job: JobRecord
    now: datetime
    submitted: Moment
    moments: list[Moment]
    attempts: list[Attempt]
    timeline: list[Step]
    parents: list[Link]
    children: list[Link]
    progress: Progress
    actions: Actions
    waiting_reason: str = ""
    signature: str = field(default="")

    @property
    def running(self) -> bool:
        return self.job.status == Status.STARTED


def read_progress(job_id: str) -> Progress:
    try:
        percent, lines = progressstore.read_progress(job_id)
    except BackendError:
        return Progress(None, [], available=False)
    return Progress(
        None if percent is None else max(0.0, min(100.0, percent)),
        [
            LogLine(datetime.fromtimestamp(float(line["at"]), UTC), str(line["msg"]))
            for line in lines
        ],
    )


def _moments(job: JobRecord, now: datetime) -> list[Moment]:
    found = [
        ("Run at", job.run_at),
        ("Enqueued", job.enqueued_at),
        ("Started", job.started_at),
        ("Finished", job.finished_at),
        ("Next attempt", job.next_attempt_at),
    ]
    return [Moment(label, at, relative(at, now)) for label, at in found if at]


def offset(seconds: float) -> str:
    if seconds < 60:
        return f"+{seconds:.2f} s"
    if seconds < 3600:
        return f"+{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"+{seconds / 3600:.1f} h"


def _steps(entries: list[TimelineEntry]) -> list[Step]:
    start = entries[0].at
    return [Step(e, offset(max(0.0, (e.at - start).total_seconds()))) for e in entries]


def _links(job: JobRecord) -> tuple[list[Link], list[Link]]:
    parents = [
        Link(
            d.parent,
            d.allow_failure,
            blocking=d.parent.status == Status.DEAD and not d.allow_failure,
        )
        for d in JobDependency.objects.filter(child=job)
        .select_related("parent")
        .order_by("parent__submitted_at")
    ]
    children = [
        Link(
            d.child,
            d.allow_failure,
            blocking=job.status == Status.DEAD
            and not d.allow_failure
            and not d.child.is_final,
        )
        for d in JobDependency.objects.filter(parent=job)
        .select_related("child")
        .order_by("child__submitted_at")
    ]
    return parents, children


def _waiting_reason(job: JobRecord, parents: list[Link]) -> str:
    """Why a job that has not started yet is still waiting on its parents."""
    if job.status not in (Status.DEFERRED, Status.PENDING) or not parents:
        return ""
    if job.last_error.startswith("waiting on dependency"):
        return job.last_error
    open_parents = [p for p in parents if not p.job.is_final]
    if not open_parents:
        return ""
    names = ", ".join(
        f"{p.job.pk} ({p.job.get_status_display().lower()})" for p in open_parents
    )
    return f"waiting on {len(open_parents)} of {len(parents)} dependencies: {names}"


def _actions(job: JobRecord) -> Actions:
    return Actions(
        retry=job.status in transitions.RETRYABLE,
        cancel=job.status in transitions.CANCELABLE,
        delete=job.status in transitions.DELETABLE,
        run_now=job.status in transitions.RUNNABLE_NOW,
    )


def _signature(
    job: JobRecord,
    tries: list[Attempt],
    entries: list[TimelineEntry],
    links: list[Link],
) -> str:
    """Changes whenever the slow-moving parts of the page (header, attempts,
    timeline, links, result) would render differently; the live partial sends
    them again only then, so an open traceback is not collapsed every 2 s."""
    state = [
        job.status,
        job.attempts,
        job.worker_name,
        job.worker_pid,
        job.next_attempt_at,
        job.finished_at,
        job.result is None,
        len(entries),
        entries[-1].at if entries else None,
        [(a.number, a.outcome) for a in tries],
        [(link.job.pk, link.job.status) for link in links],
    ]
    return hashlib.sha1(repr(state).encode()).hexdigest()[:16]


def job_page(job_id: str) -> JobPage | None:
    """Everything the job page shows, or None for an unknown id."""
    rows = JobRecord.objects.select_related("submitted_by").filter(pk=job_id)
    job = with_rounds(rows).first()
    if job is None:
        return None
    now = timezone.now()
    tries = list(attempts(job))
    entries = timeline(job)
    parents, children = _links(job)
    return JobPage(
        job=job,
        now=now,
        submitted=Moment(
            "Submitted", job.submitted_at, relative(job.submitted_at, now)
        ),
        moments=_moments(job, now),
        attempts=tries,
        timeline=_steps(entries),
        parents=parents,
        children=children,
        progress=read_progress(job.pk),
        actions=_actions(job),
        waiting_reason=_waiting_reason(job, parents),
        signature=_signature(job, tries, entries, parents + children),
    )
