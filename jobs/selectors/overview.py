"""Reads for the overview and the queue page: live figures from Redis (O(1)
commands only) and indexed COUNTs from the database; never a job row scan.

When Redis is down the database figures are still returned and the live ones
are None, so the console shows "Redis unavailable" instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from jobs import stats
from jobs.backend import connect, live, queues
from jobs.backend.errors import BackendError
from jobs.backend.live import Depth
from jobs.charts import downsample, duration_text
from jobs.models import JobRecord, QueueState
from jobs.selectors.figures import Figures, Window, window_figures

HOUR = 60
DAY = 24 * 60
#: The day chart shows 96 points of 15 minutes rather than 1440 of one.
DAY_POINTS = 96
#: The queue page lists this many waiting jobs (the rest are counted).
WAITING_SHOWN = 50

WINDOWS = {"hour": HOUR, "day": DAY}


@dataclass(frozen=True)
class QueueRow:
    name: str
    state: QueueState | None
    #: Finished work in the window (jobs.selectors.figures), from the database.
    figures: Figures
    #: None when Redis is unavailable (so is the worker count).
    depth: Depth | None
    workers: int | None = None

    @property
    def dead(self) -> int:
        return self.figures.dead

    @property
    def paused(self) -> bool:
        return bool(self.state and self.state.paused)

    @property
    def oldest_wait(self) -> float | None:
        return self.depth.oldest_wait if self.depth else None

    @property
    def oldest_wait_text(self) -> str:
        return duration_text(self.oldest_wait)


@dataclass(frozen=True)
class Headline:
    #: Finished work in the window over every queue, from the database.
    figures: Figures
    waiting: int | None = None
    running: int | None = None
    workers_alive: int | None = None
    oldest_wait: float | None = None
    #: The queue holding the oldest waiting job (the headline links to it).
    oldest_queue: str = ""

    @property
    def oldest_wait_text(self) -> str:
        return duration_text(self.oldest_wait)


@dataclass(frozen=True)
class Overview:
    redis_ok: bool
    headline: Headline
    queues: list[QueueRow]
    at: datetime = field(default_factory=timezone.now)


def dead_counts(names: list[str]) -> dict[str, int]:
    """Dead jobs per queue: one COUNT(*) answered from the (queue, status)
    index alone (naming the queues lets the database seek each one; COUNT(id)
    or no queue list made SQLite read 100,000 dead rows in 0.45 s)."""
    rows = (
        JobRecord.objects.filter(status=JobRecord.Status.DEAD, queue__in=names)
        .order_by()
        .values("queue")
        .annotate(n=Count("*"))
        .values_list("queue", "n")
    )
    return {queue: n for queue, n in rows}


def dead_total() -> int:
    """Dead jobs now in every queue, configured or not (a queue dropped from
    JOB_QUEUES, jobs another producer put in one): what the headline's link,
    the Jobs screen's status=dead, lists. A COUNT(*) searched in an index that
    starts with status (covering: SQLite reads no row)."""
    return JobRecord.objects.filter(status=JobRecord.Status.DEAD).order_by().count()


def queue_states() -> dict[str, QueueState]:
    return {
        s.name: s
        for s in QueueState.objects.select_related("paused_by").filter(
            name__in=settings.JOB_QUEUES
        )
    }


def workers_per_queue(workers: list[live.WorkerInfo]) -> dict[str, int]:
    """Live workers serving each logical queue (workers list lanes)."""
    found: dict[str, int] = {}
    for worker in workers:
        for queue in {queues.logical_queue(lane) for lane in worker.queues}:
            found[queue] = found.get(queue, 0) + 1
    return found


def overview(window: Window | None = None) -> Overview:
    """The overview's figures (one definition for the console, `jobs stats`
    and the API): live depths from Redis, finished work from the history."""
    names = list(settings.JOB_QUEUES)
    states = queue_states()
    overall, per_queue = window_figures(
        names, dead_counts(names), window, dead_total=dead_total()
    )
    try:
        depths = live.queue_depths(names)
        workers = live.live_workers()
    except BackendError:
        rows = [QueueRow(q, states.get(q), per_queue[q], None) for q in names]
        return Overview(False, Headline(overall), rows)
    serving = workers_per_queue(workers)
    rows = [
        QueueRow(q, states.get(q), per_queue[q], depths[q], workers=serving.get(q, 0))
        for q in names
    ]
    waits = [(r.oldest_wait, r.name) for r in rows if r.oldest_wait is not None]
    oldest, oldest_queue = max(waits) if waits else (None, "")
    headline = Headline(
        overall,
        waiting=sum(d.queued for d in depths.values()),
        running=sum(d.started for d in depths.values()),
        workers_alive=len(workers),
        oldest_wait=oldest,
        oldest_queue=oldest_queue,
    )
    return Overview(True, headline, rows)


@dataclass(frozen=True)
class ChartData:
    window: str
    minutes_per_point: int
    processed: list[float]
    failed: list[float]
    oldest_wait: dict[str, list[float]]
    redis_ok: bool = True


def chart_data(window: str) -> ChartData:
    """Per-minute series over the last hour, or the last day in 15-minute
    points (rates averaged, oldest wait as the worst in each point)."""
    minutes = WINDOWS.get(window, HOUR)
    window = "day" if minutes == DAY else "hour"
    try:
        points = stats.series(connect.connection(), minutes=minutes)
    except BackendError:
        return ChartData(window, 1, [], [], {}, redis_ok=False)
    size = DAY_POINTS if minutes == DAY else minutes
    waits = {
        q: downsample([p.get(q, "oldest_wait") for p in points], size, max)
        for q in settings.JOB_QUEUES
    }
    return ChartData(
        window,
        minutes // size,
        downsample([p.total("processed") for p in points], size),
        downsample([p.total("failed") for p in points], size),
        waits,
    )


@dataclass(frozen=True)
class WaitingJob:
    position: int
    id: str
    #: None when Redis knows the job but the database does not (yet).
    record: JobRecord | None


@dataclass(frozen=True)
class QueuePage:
    row: QueueRow
    waiting: list[WaitingJob]
    redis_ok: bool
    at: datetime = field(default_factory=timezone.now)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def waiting_count(self) -> int | None:
        return self.row.depth.queued if self.row.depth else None


def _waiting(name: str) -> list[WaitingJob]:
    ids = live.waiting_job_ids(name, WAITING_SHOWN)
    records = JobRecord.objects.only(
        "id", "task", "priority", "status", "submitted_at", "enqueued_at"
    ).in_bulk(ids)
    return [WaitingJob(n, i, records.get(i)) for n, i in enumerate(ids, start=1)]


def queue_page(name: str) -> QueuePage:
    """One queue: depth by state, the first waiting jobs, pause state."""
    state = QueueState.objects.select_related("paused_by").filter(name=name).first()
    _overall, per_queue = window_figures([name], dead_counts([name]))
    figures = per_queue[name]
    try:
        depth = live.queue_depths([name])[name]
        serving = workers_per_queue(live.live_workers()).get(name, 0)
        waiting = _waiting(name)
    except BackendError:
        return QueuePage(QueueRow(name, state, figures, None), [], redis_ok=False)
    row = QueueRow(name, state, figures, depth, workers=serving)
    return QueuePage(row, waiting, redis_ok=True)


def waiting_count(name: str) -> int | None:
    """Jobs waiting in a queue's lanes now; None when Redis is unavailable."""
    try:
        return live.queue_depths([name])[name].queued
    except BackendError:
        return None
