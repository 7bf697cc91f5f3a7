"""Reads for the workers screen: live workers from RQ's registry and the ones
seen in the last hour that have since gone (kept by the monitor)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from jobs.backend import connect, live, queues
from jobs.backend.errors import BackendError
from jobs.charts import duration_text
from jobs.models import OperatorAction

#: The operator log's action for a change of Redis primary (the monitor's).
FAILOVER_ACTION = "redis-failover"
#: A heartbeat older than this is shown as late (RQ's default interval is 10 s).
LATE_HEARTBEAT = 60.0

STATE_CLASSES = {
    "busy": "state-running",
    "idle": "state-succeeded",
    "started": "state-succeeded",
    "suspended": "state-paused",
}


def logical_queues(lane_names: list[str]) -> list[str]:
    """ "default:high", "default", "default:low" -> "default" (order kept)."""
    return list(dict.fromkeys(queues.logical_queue(n) for n in lane_names))


@dataclass(frozen=True)
class WorkerRow(live.WorkerInfo):
    """A live worker as the Workers screen shows it: its queues by their
    logical names (not their lanes)."""

    @property
    def slots_text(self) -> str:
        return f"{self.slots_busy} / {self.concurrency}"

    @property
    def state_class(self) -> str:
        return STATE_CLASSES.get(self.state, "state-queued")

    @property
    def heartbeat_text(self) -> str:
        return duration_text(self.heartbeat_age)

    @property
    def heartbeat_late(self) -> bool:
        return self.heartbeat_age is not None and self.heartbeat_age > LATE_HEARTBEAT

    @property
    def memory_mb(self) -> float:
        return self.rss_kb / 1024

    @property
    def job_processes_mb(self) -> float:
        return self.job_processes_kb / 1024

    @property
    def queue_links(self) -> list[tuple[str, str | None]]:
        return [(name, _link("jobs:queue", name)) for name in self.queues]

    @property
    def job_url(self) -> str | None:
        return _link("jobs:job", self.current_job) if self.current_job else None

    @property
    def stop_url(self) -> str | None:
        return _link("jobs:worker-stop", self.name)


def _link(view: str, value: str) -> str | None:
    """The console URL of a name read from a worker's hash (anyone may write
    there), or None where no route takes it (a "/" in it): shown unlinked
    rather than failing the page."""
    try:
        return reverse(view, args=[value])
    except NoReverseMatch:
        return None


@dataclass(frozen=True)
class DeadWorker:
    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    last_seen: datetime | None


@dataclass(frozen=True)
class WorkerBoard:
    redis_ok: bool
    alive: list[WorkerRow]
    dead: list[DeadWorker]
    at: datetime = field(default_factory=timezone.now)
    #: The Redis server workers use now, and its last change (issue 20).
    redis_primary: str = ""
    last_failover: OperatorAction | None = None


def _row(info: live.WorkerInfo) -> WorkerRow:
    found = {f.name: getattr(info, f.name) for f in fields(info)}
    return WorkerRow(**(found | {"queues": logical_queues(info.queues)}))


def _dead(name: str, raw: bytes) -> DeadWorker | None:
    try:
        seen = json.loads(raw)
        when = float(seen.get("seen") or 0)
        pid = seen.get("pid")
        return DeadWorker(
            name=name,
            hostname=str(seen.get("hostname") or ""),
            pid=int(pid) if pid is not None else None,
            queues=logical_queues([str(q) for q in seen.get("queues") or []]),
            last_seen=datetime.fromtimestamp(when, UTC) if when else None,
        )
    except (ValueError, TypeError, AttributeError):
        return None  # a malformed entry is not worth failing the page for


def worker_board(queue: str = "") -> WorkerBoard:
    """Two reads: RQ's worker registry and the monitor's seen-workers hash
    (bounded: only workers seen in the last hour). With a queue, only the
    workers serving it: the list behind a queue's "workers" count."""
    try:
        alive = [_row(w) for w in live.live_workers()]
        seen = live.workers_seen()
    except BackendError:
        return WorkerBoard(False, [], [])
    names = {w.name for w in alive}
    dead = [
        found
        for name, raw in seen.items()
        if name not in names and (found := _dead(name, raw))
    ]
    if queue:
        alive = [w for w in alive if queue in w.queues]
        dead = [d for d in dead if queue in d.queues]
    oldest = datetime.min.replace(tzinfo=UTC)
    dead.sort(key=lambda d: d.last_seen or oldest, reverse=True)
    return WorkerBoard(
        True,
        sorted(alive, key=lambda w: w.name),
        dead,
        redis_primary=connect.primary_label(),
        last_failover=OperatorAction.objects.filter(action=FAILOVER_ACTION).first(),
    )
