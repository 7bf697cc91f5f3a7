"""Prometheus metrics at /metrics: the web's own figures (django-prometheus)
and the queue and job figures, which come from Redis counters and the
database, so they are right with forked job processes and many hosts.

Every name is documented in README.md ("Metrics").
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from jobs import events, stats
from jobs.backend import connect, live, prometheus
from jobs.models import JobRecord
from jobs.selectors.figures import COUNTERS, DEFINITIONS
from jobs.selectors.overview import dead_counts

STATES = ("queued", "scheduled", "started", "deferred")

prometheus.forget_django_rq_summary()


def _depth_metrics() -> Iterator[Metric]:
    depths = live.queue_depths(settings.JOB_QUEUES)
    depth = GaugeMetricFamily(
        "jobs_queue_depth",
        DEFINITIONS["dead"].metric_help,
        labels=["queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "jobs_queue_oldest_wait_seconds",
        "Age of the oldest waiting job",
        labels=["queue"],
    )
    for name, d in depths.items():
        for state in STATES:
            depth.add_metric([name, state], getattr(d, state))
        oldest.add_metric([name], d.oldest_wait or 0.0)
    dead = dead_counts(list(depths))
    for name in depths:
        depth.add_metric([name, "dead"], dead.get(name, 0))
    yield depth
    yield oldest


def _counter_metrics(client: Any) -> Iterator[Metric]:
    totals = stats.totals(client)
    for name, key in COUNTERS.items():
        definition = DEFINITIONS[key]
        family = CounterMetricFamily(
            definition.metric.removesuffix("_total"),
            definition.metric_help,
            labels=["queue", "task"],
        )
        for (queue, task, kind), value in sorted(totals.items()):
            if kind == name:
                family.add_metric([queue, task], value)
        yield family
    histogram = HistogramMetricFamily(
        "jobs_duration_seconds", "Job run time", labels=["task"]
    )
    for task, buckets in sorted(stats.durations(client).items()):
        running = 0.0
        cumulative = []
        for bound in stats.DURATION_BUCKETS:
            running += buckets.get(str(bound), 0.0)
            cumulative.append((str(bound), running))
        running += buckets.get("inf", 0.0)
        cumulative.append(("+Inf", running))
        histogram.add_metric([task], cumulative, sum_value=buckets.get("sum", 0.0))
    yield histogram


def _worker_metrics(client: Any) -> Iterator[Metric]:
    workers = live.live_workers()
    by_state = GaugeMetricFamily(
        "jobs_workers", "Live workers by state", labels=["state"]
    )
    counts: dict[str, int] = {}
    for w in workers:
        counts[w.state] = counts.get(w.state, 0) + 1
    for state in ("idle", "busy", "suspended", "started"):
        by_state.add_metric([state], counts.pop(state, 0))
    for state, n in counts.items():
        by_state.add_metric([state], n)
    yield by_state
    heartbeat = GaugeMetricFamily(
        "jobs_worker_heartbeat_age_seconds",
        "Seconds since a worker's heartbeat",
        labels=["worker"],
    )
    memory = GaugeMetricFamily(
        "jobs_worker_resident_memory_bytes",
        "Resident memory of a worker process",
        labels=["worker"],
    )
    job_memory = GaugeMetricFamily(
        "jobs_worker_job_processes_memory_bytes",
        "Proportional memory (PSS) of a slot worker's job processes",
        labels=["worker"],
    )
    for w in workers:
        heartbeat.add_metric([w.name], w.heartbeat_age or 0.0)
        memory.add_metric([w.name], w.rss_kb * 1024)
        if w.job_processes:
            job_memory.add_metric([w.name], w.job_processes_kb * 1024)
    yield heartbeat
    yield memory
    yield job_memory
    seen = client.get("console:scheduler:seen")
    scheduler = GaugeMetricFamily(
        "jobs_scheduler_last_seen_seconds",
        "Seconds since the scheduler last ran its loop",
    )
    scheduler.add_metric([], time.time() - float(seen) if seen else -1)
    yield scheduler


def _backlog_metrics(client: Any) -> Iterator[Metric]:
    outbox = GaugeMetricFamily(
        "jobs_outbox_pending",
        "Jobs accepted whose arrival in Redis the history has not recorded yet",
    )
    outbox.add_metric(
        [], JobRecord.objects.filter(status=JobRecord.Status.PENDING).count()
    )
    yield outbox
    stream = GaugeMetricFamily(
        "jobs_recorder_backlog_events", "Worker events not yet written to the database"
    )
    stream.add_metric([], client.xlen(events.STREAM))
    yield stream


class JobsCollector:
    def collect(self) -> Iterator[Metric]:
        client = connect.connection()
        yield from _depth_metrics()
        yield from _counter_metrics(client)
        yield from _worker_metrics(client)
        yield from _backlog_metrics(client)


def _allowed(request: HttpRequest) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse(
            "authentication required: bearer METRICS_TOKEN or a staff session\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    ours = CollectorRegistry(auto_describe=False)
    ours.register(JobsCollector())
    body = generate_latest(REGISTRY) + generate_latest(ours)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
