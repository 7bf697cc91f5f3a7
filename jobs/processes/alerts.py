"""Alert evaluation: the monitor checks every rule every few seconds.

Each rule yields findings (one per queue, or one overall); a finding with no
open alert opens one and notifies; an open alert whose finding is gone is
resolved and notifies once more. A still-open alert is never re-notified.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from jobs import notify
from jobs.backend import connect, live, queues
from jobs.models import Alert, AlertRule, JobRecord, QueueState, Schedule
from jobs.selectors.figures import Figures, Window, jobs_query, window_figures

Kind = AlertRule.Kind
SCHEDULER_SEEN = "console:scheduler:seen"


@dataclass(frozen=True)
class Finding:
    subject: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What every rule looks at, read once per evaluation."""

    depths: dict[str, live.Depth]
    workers: list[live.WorkerInfo]
    paused: set[str]

    def served(self, queue: str) -> bool:
        return any(
            queue == queues.logical_queue(lane)
            for w in self.workers
            for lane in w.queues
        )


def snapshot() -> Snapshot:
    return Snapshot(
        depths=live.queue_depths(settings.JOB_QUEUES),
        workers=live.live_workers(),
        paused=set(
            QueueState.objects.filter(paused=True).values_list("name", flat=True)
        ),
    )


def _queues(rule: AlertRule) -> list[str]:
    return [rule.queue] if rule.queue else list(settings.JOB_QUEUES)


def _examples(status: str, since: Any, queue: str | None = None) -> dict[str, Any]:
    rows = JobRecord.objects.filter(status=status, finished_at__gte=since)
    if queue:
        rows = rows.filter(queue=queue)
    top = list(rows.values("task").annotate(n=Count("pk")).order_by("-n")[:3])
    return {
        "top_tasks": [{"task": r["task"], "count": r["n"]} for r in top],
        "example_jobs": list(rows.values_list("pk", flat=True)[:5]),
    }


def _waiting_jobs(queue: str) -> str:
    """The Jobs screen's filter for the jobs an alert about waiting is about
    (the alert card links it: every number leads to its jobs)."""
    return jobs_query(queue=queue, status="queued")


def queue_depth(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    return [
        Finding(
            q,
            f"{q}: {snap.depths[q].queued} jobs waiting (threshold {rule.threshold:g})",
            {
                "queued": snap.depths[q].queued,
                "threshold": rule.threshold,
                "jobs_query": _waiting_jobs(q),
            },
        )
        for q in _queues(rule)
        if q in snap.depths and snap.depths[q].queued > rule.threshold
    ]


def oldest_wait(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    found = []
    for q in _queues(rule):
        wait = snap.depths[q].oldest_wait if q in snap.depths else None
        if wait is not None and wait > rule.threshold and q not in snap.paused:
            found.append(
                Finding(
                    q,
                    f"{q}: oldest job waiting {wait:.0f} s "
                    f"(threshold {rule.threshold:g} s)",
                    {
                        "oldest_wait_seconds": round(wait, 1),
                        "queued": snap.depths[q].queued,
                        "jobs_query": _waiting_jobs(q),
                    },
                )
            )
    return found


def failure_rate(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    """Failed attempts over finished attempts in the rule's window, per queue
    (the definitions of jobs.selectors.figures). A rate over a few attempts,
    or from one job failing again and again, is noise: the rule's minimum
    volume and minimum of failing jobs must both be met."""
    window = Window.last(max(1, rule.window_seconds // 60))
    _overall, per_queue = window_figures(_queues(rule), {}, window)
    found = []
    for figures in per_queue.values():
        total = figures.finished_attempts
        if (
            total < max(1, rule.min_attempts)
            or figures.failed_jobs < rule.min_failing_jobs
        ):
            continue
        rate = 100 * figures.failed_attempts / total
        if rate > rule.threshold:
            found.append(_failure_finding(rule, figures, rate))
    return found


def _failure_finding(rule: AlertRule, figures: Figures, rate: float) -> Finding:
    q = figures.queue
    return Finding(
        q,
        f"{q}: {rate:.0f}% of attempts failed in the last "
        f"{rule.window_seconds // 60} min ({figures.failed_attempts} of "
        f"{figures.finished_attempts}, {figures.failed_jobs} jobs)",
        {
            "failed_attempts": figures.failed_attempts,
            "attempts": figures.finished_attempts,
            "failed_jobs": figures.failed_jobs,
            "rate_percent": round(rate, 1),
            "jobs_query": figures.links["failed_jobs"],
            **_examples(JobRecord.Status.DEAD, figures.window.since, q),
        },
    )


def no_worker(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    return [
        Finding(
            q,
            f"{q}: {snap.depths[q].queued} jobs waiting and no live "
            "worker serves the queue",
            {
                "queued": snap.depths[q].queued,
                "live_workers": [w.name for w in snap.workers],
                "jobs_query": _waiting_jobs(q),
            },
        )
        for q in _queues(rule)
        if q in snap.depths
        and snap.depths[q].queued > 0
        and q not in snap.paused
        and not snap.served(q)
    ]


def dead_growth(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    # From a whole second, as the link below carries it.
    since = timezone.now().replace(microsecond=0) - timedelta(
        seconds=rule.window_seconds
    )
    count = JobRecord.objects.filter(
        status=JobRecord.Status.DEAD, finished_at__gte=since
    ).count()
    if count <= rule.threshold:
        return []
    return [
        Finding(
            "all queues",
            f"{count} jobs went dead in the last {rule.window_seconds // 60} min",
            {
                "dead": count,
                "jobs_query": jobs_query(status="dead", finished_since=since),
                **_examples(JobRecord.Status.DEAD, since),
            },
        )
    ]


def scheduler_down(rule: AlertRule, snap: Snapshot) -> list[Finding]:
    if not Schedule.objects.filter(enabled=True).exists():
        return []
    raw = connect.connection().get(SCHEDULER_SEEN)
    age = time.time() - float(raw) if raw else None
    if age is not None and age <= rule.threshold:
        return []
    seen = f"last seen {age:.0f} s ago" if age is not None else "never seen"
    return [
        Finding(
            "scheduler",
            f"scheduler {seen} while schedules are enabled",
            {"seconds_since_seen": age},
        )
    ]


RULES: dict[str, Callable[[AlertRule, Snapshot], list[Finding]]] = {
    Kind.QUEUE_DEPTH: queue_depth,
    Kind.OLDEST_WAIT: oldest_wait,
    Kind.FAILURE_RATE: failure_rate,
    Kind.NO_WORKER: no_worker,
    Kind.DEAD_GROWTH: dead_growth,
    Kind.SCHEDULER_DOWN: scheduler_down,
}


def evaluate() -> tuple[list[Alert], list[Alert]]:
    """Open and resolve alerts; returns (opened, resolved)."""
    rules = list(AlertRule.objects.filter(enabled=True))
    if not rules:
        return [], []
    snap = snapshot()
    opened: list[Alert] = []
    resolved: list[Alert] = []
    for rule in rules:
        findings = {f.subject: f for f in RULES[rule.kind](rule, snap)}
        open_now = {
            a.subject: a
            for a in Alert.objects.filter(rule=rule, resolved_at__isnull=True)
        }
        for subject, finding in findings.items():
            if subject not in open_now:
                alert = _open(rule, finding)
                if alert is not None:
                    opened.append(alert)
        for subject, alert in open_now.items():
            if subject not in findings:
                alert.resolved_at = timezone.now()
                alert.save(update_fields=["resolved_at"])
                resolved.append(alert)
    for alert in opened:
        notify.alert_changed(alert, "opened")
    for alert in resolved:
        notify.alert_changed(alert, "resolved")
    return opened, resolved


def _open(rule: AlertRule, finding: Finding) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=rule,
                subject=finding.subject[:200],
                opened_at=timezone.now(),
                summary=finding.summary[:500],
                detail={"rule": rule.get_kind_display(), **finding.detail},
            )
    except IntegrityError:
        return None  # another monitor opened it a moment ago
