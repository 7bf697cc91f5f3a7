"""Figure 8: /metrics response time over many job records and 50 queues."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from bench import generate
from bench.context import Context
from bench.reset import reset
from bench.results import progress
from bench.stats import percentile, rate, timed
from bench.table import Row
from jobs.models import JobRecord

GOAL_MS = 100.0
QUEUES = 50
WARMUP = 3
TOKEN = "bench-metrics-token"
NOTE = (
    "8: GET /metrics through Django's test client (bearer token; no network), "
    "JOB_QUEUES set to 50 names, over N finished job records (10 % dead) spread "
    "over them and 30 days, written by one executemany; 3 warm-up requests are "
    "not counted. No plain RQ figure: it has no job history to count."
)


class SqlClock:
    """A database execute wrapper: the SQL time of one request, and its
    slowest statement."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.slowest: tuple[float, str] = (0.0, "")

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            took = time.perf_counter() - start
            self.seconds += took
            self.slowest = max(self.slowest, (took, sql))


def _timed_get(client: Client, sql: list[float], slow: dict[str, float]) -> float:
    """Milliseconds of one request; its SQL time goes to `sql`."""
    clock = SqlClock()
    with connection.execute_wrapper(clock):
        _, seconds = timed(lambda: _get(client))
    sql.append(clock.seconds * 1000)
    took, statement = clock.slowest
    slow[statement] = max(slow.get(statement, 0.0), took * 1000)
    return seconds * 1000


def _get(client: Client) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    if response.status_code != 200 or b"jobs_queue_depth" not in response.content:
        raise RuntimeError(f"/metrics answered {response.status_code}")


def figure(ctx: Context) -> None:
    total, dead, requests = ctx.sizes.records, ctx.sizes.dead, ctx.sizes.requests
    progress(f"figure 8: /metrics over {total:,} job records, {requests} requests")
    reset()
    queues = generate.queue_names(QUEUES)
    _, seconds = timed(lambda: generate.job_records(total, dead, queues))
    count = JobRecord.objects.count()
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    with (
        override_settings(JOB_QUEUES=queues, METRICS_TOKEN=TOKEN, ALLOWED_HOSTS=hosts),
        warnings.catch_warnings(),
    ):
        # WhiteNoise warns once that STATIC_ROOT was never collected: harmless.
        warnings.filterwarnings("ignore", message="No directory at")
        for _ in range(WARMUP):
            _get(client)
        sql: list[float] = []
        slow: dict[str, float] = {}
        times = [_timed_get(client, sql, slow) for _ in range(requests)]
    p50, p95 = percentile(times, 50), percentile(times, 95)
    goal = f"< {GOAL_MS:g} ms"
    ctx.results.rows += [
        Row(
            f"8. /metrics p50, {count:,} records (ms)",
            p50,
            None,
            goal,
            p50 < GOAL_MS,
            1,
        ),
        Row("8. /metrics p95 (ms)", p95, None, goal, p95 < GOAL_MS, 1),
    ]
    statement, worst = max(slow.items(), key=lambda item: item[1])
    ctx.results.details += [
        f"8. {total:,} records ({dead:,} dead) written in {seconds:.1f} s "
        f"({rate(total, seconds):,.0f} rows/s)",
        f"8. SQL time per request, median {percentile(sql, 50):.1f} ms; slowest "
        f"statement (up to {worst:.1f} ms): {' '.join(statement.split())[:160]}",
    ]
