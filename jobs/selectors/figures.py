"""What each figure about finished work counts, in one place.

The overview, the queue page, `jobs stats`, `GET /api/stats/`, the alert
rules and `/metrics` take their words and numbers from here, so "failed"
cannot mean attempts on one screen and jobs on another. Two kinds of thing
are counted and never mixed in one figure: jobs (a job record) and attempts
(one execution of a job by a worker; a job retried has several).

Figures over a window count the durable history (job records and attempts in
SQL, written by the recorder about a second after a worker reports), so that
each figure links to a Jobs screen filter yielding exactly the jobs behind
it (`links`). The Prometheus counters count the same events since Redis was
last emptied, from counters the workers keep (jobs/stats.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count
from django.utils import timezone

from jobs.models import Attempt, JobRecord

#: Figures over a window on the overview, the queue page and `jobs stats`.
WINDOW_MINUTES = 60
#: An attempt in one of these outcomes is a failed attempt.
FAILED_OUTCOMES = (Attempt.Outcome.FAILED, Attempt.Outcome.LOST)


@dataclass(frozen=True)
class Definition:
    key: str
    label: str
    unit: str
    meaning: str
    #: The Prometheus series counting the same thing ("" when none does),
    #: and its HELP text (counters count since Redis was last emptied).
    metric: str = ""
    metric_help: str = ""


DEFINITIONS: dict[str, Definition] = {
    d.key: d
    for d in (
        Definition(
            "succeeded",
            "succeeded",
            "jobs",
            "Jobs that succeeded in the window. A job succeeds at most once, "
            "so these are also the attempts that succeeded.",
            "jobs_processed_total",
            "Jobs that succeeded (each succeeds once: also the attempts that "
            "succeeded); the name is kept for existing dashboards",
        ),
        Definition(
            "failed_attempts",
            "failed attempts",
            "attempts",
            "Attempts that raised, timed out or lost their worker in the "
            "window, whether the job was then retried, went dead or later "
            "succeeded.",
            "jobs_failed_total",
            "Attempts that failed or lost their worker (retried, then dead, "
            "or later succeeded)",
        ),
        Definition(
            "failed_jobs",
            "jobs with a failed attempt",
            "jobs",
            "Distinct jobs behind the failed attempts in the window.",
        ),
        Definition(
            "retried",
            "retried",
            "attempts",
            "Failed attempts after which the job was retried automatically.",
            "jobs_retried_total",
            "Failed attempts after which the job was retried automatically",
        ),
        Definition(
            "went_dead",
            "went dead",
            "jobs",
            "Jobs whose attempts ran out in the window and that are still "
            "dead (not retried by hand since).",
            "jobs_dead_total",
            "Times a job's attempts ran out (the job went dead)",
        ),
        Definition(
            "dead",
            "dead",
            "jobs",
            "Jobs dead now, whenever they died: the dead letters, which the "
            "Failures screen groups by error (with the jobs waiting to retry). "
            "The total counts every queue, also one no longer configured.",
            'jobs_queue_depth{state="dead"}',
            "Jobs in a queue by state",
        ),
    )
}


@dataclass(frozen=True)
class Window:
    """The last `minutes` up to now, from a whole second (links carry it)."""

    since: datetime
    minutes: int = WINDOW_MINUTES

    @classmethod
    def last(cls, minutes: int = WINDOW_MINUTES) -> Window:
        since = timezone.now().replace(microsecond=0) - timedelta(minutes=minutes)
        return cls(since, minutes)

    @property
    def text(self) -> str:
        return "last hour" if self.minutes == 60 else f"last {self.minutes} min"


@dataclass(frozen=True)
class Figures:
    """Finished work in one window for one queue, or for all of them."""

    window: Window
    queue: str = ""
    succeeded: int = 0
    failed_attempts: int = 0
    failed_jobs: int = 0
    went_dead: int = 0
    dead: int = 0
    links: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def finished_attempts(self) -> int:
        """Succeeded plus failed attempts: the base of a failure rate."""
        return self.succeeded + self.failed_attempts

    def as_json(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in JSON_KEYS}


#: The keys of `Figures.as_json`, in the order the CLI prints them.
JSON_KEYS = ("succeeded", "failed_attempts", "failed_jobs", "went_dead", "dead")


#: The Redis counter (jobs/stats.py OUTCOMES) behind each exported counter.
COUNTERS = {
    "processed": "succeeded",
    "failed": "failed_attempts",
    "retried": "retried",
    "dead": "went_dead",
}


def jobs_query(**filters: str | datetime) -> str:
    """The query string of the Jobs screen for a filter (as JobFilter reads
    it: times in ISO 8601)."""
    return urlencode(
        {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in filters.items()
            if value
        }
    )


def _links(window: Window, queue: str) -> dict[str, str]:
    since = window.since
    return {
        "succeeded": jobs_query(queue=queue, status="succeeded", finished_since=since),
        "failed_attempts": jobs_query(queue=queue, failed_since=since),
        "failed_jobs": jobs_query(queue=queue, failed_since=since),
        "went_dead": jobs_query(queue=queue, status="dead", finished_since=since),
        "dead": jobs_query(queue=queue, status="dead"),
    }


def _finished_jobs(window: Window) -> dict[tuple[str, str], int]:
    """(queue, status) -> jobs that finished in the window, from the
    (status, finished_at) index."""
    rows = (
        JobRecord.objects.filter(
            status__in=[JobRecord.Status.SUCCEEDED, JobRecord.Status.DEAD],
            finished_at__gte=window.since,
        )
        .order_by()
        .values_list("queue", "status")
        .annotate(n=Count("*"))
    )
    return {(queue, status): n for queue, status, n in rows}


def _failed_attempts(window: Window) -> dict[str, tuple[int, int]]:
    """queue -> (failed attempts, distinct jobs) in the window."""
    rows = (
        Attempt.objects.filter(
            outcome__in=FAILED_OUTCOMES, finished_at__gte=window.since
        )
        .order_by()
        .values_list("job__queue")
        .annotate(n=Count("*"), jobs=Count("job_id", distinct=True))
    )
    return {queue: (n, jobs) for queue, n, jobs in rows}


def window_figures(
    queues: list[str],
    dead: dict[str, int],
    window: Window | None = None,
    *,
    dead_total: int | None = None,
) -> tuple[Figures, dict[str, Figures]]:
    """The figures for all jobs and for each queue named. `dead` is the count
    of dead jobs per queue (overview.dead_counts, answered by an index);
    `dead_total` those of every queue, named or not, as the overall figures'
    window counts and links are (default: the sum of `dead`)."""
    window = window or Window.last()
    finished = _finished_jobs(window)
    failed = _failed_attempts(window)
    per_queue = {
        q: Figures(
            window,
            q,
            succeeded=finished.get((q, JobRecord.Status.SUCCEEDED), 0),
            failed_attempts=failed.get(q, (0, 0))[0],
            failed_jobs=failed.get(q, (0, 0))[1],
            went_dead=finished.get((q, JobRecord.Status.DEAD), 0),
            dead=dead.get(q, 0),
            links=_links(window, q),
        )
        for q in queues
    }
    overall = Figures(
        window,
        succeeded=sum(
            n for (_q, s), n in finished.items() if s == JobRecord.Status.SUCCEEDED
        ),
        failed_attempts=sum(n for n, _jobs in failed.values()),
        # A job is in one queue: the distinct jobs of each queue add up.
        failed_jobs=sum(jobs for _n, jobs in failed.values()),
        went_dead=sum(
            n for (_q, s), n in finished.items() if s == JobRecord.Status.DEAD
        ),
        dead=sum(dead.values()) if dead_total is None else dead_total,
        links=_links(window, ""),
    )
    return overall, per_queue
