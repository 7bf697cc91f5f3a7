"""Figure 10: the console's screens over many job records, on SQLite and on
PostgreSQL in the same run, and "Retry all" on a failure group.

Each database is measured by bench.screens_run in a process of its own:
SQLite in a file of this run's directory, PostgreSQL in a private server
(bench.pg) started here and removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

from bench import generate, pg, plots
from bench.context import Context
from bench.results import progress
from bench.stats import percentile
from bench.table import Row

GOAL_MS = 150.0
SEARCH_GOAL_MS = 300.0
RETRY_GOAL_S = 10.0
#: A production-like count (figure 8 stresses 50).
QUEUES = 10
NOTE = (
    "10: GET of each screen through Django's test client as a logged-in "
    "superuser (session, middleware, template: the whole response), 3 warm-up "
    "requests not counted, over N finished job records (10 % dead, in 10 "
    "failure groups, each with its failed attempt; payloads name one of 5,000 "
    "customers) written by one executemany per step, 10 queues. The searches "
    "match 200 payloads and 100 errors in a million. PostgreSQL 15 is a private "
    "server (initdb in the run's directory, default settings but "
    "shared_buffers=256MB) after VACUUM ANALYZE, as autovacuum leaves it; SQLite "
    "is a file in WAL mode. Retry all: POST of the Failures screen's button for "
    "one group whose dead jobs are also in RQ's failed registry, timed until the "
    "response (jobs enqueued on commit); memory: rise of the process's peak RSS "
    "over its RSS before, and tracemalloc's peak on a second group (not timed)."
)


def _run_side(ctx: Context, name: str, url: str) -> dict[str, Any]:
    sizes = ctx.sizes
    output = ctx.directory / f"screens-{name}.json"
    command = [
        sys.executable,
        "-m",
        "bench.screens_run",
        "--database-url",
        url,
        "--redis-url",
        settings.REDIS_URL,
        "--steps",
        ",".join(str(n) for n in sizes.screen_steps),
        "--dead-share",
        str(sizes.dead / sizes.records),
        "--requests",
        str(sizes.screen_requests),
        "--log",
        str(ctx.directory / f"screens-{name}.log"),
        "--output",
        str(output),
    ]
    queues = ",".join(generate.queue_names(QUEUES))
    subprocess.run(
        command,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "JOB_QUEUES": queues},
    )
    found: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return found


def measure_sides(ctx: Context) -> dict[str, dict[str, Any]]:
    sides: dict[str, dict[str, Any]] = {}
    progress("figure 10: screens on SQLite")
    sqlite = ctx.directory / "screens.sqlite3"
    sides["SQLite"] = _run_side(ctx, "sqlite", f"sqlite:///{sqlite}")
    progress("figure 10: screens on PostgreSQL (private server)")
    try:
        with pg.PrivatePostgres() as server:
            sides["PostgreSQL"] = _run_side(ctx, "postgresql", server.url)
    except pg.PostgresUnavailable as exc:
        ctx.results.rows.append(
            Row("10. PostgreSQL screens", "not measured", None, "measured", False)
        )
        ctx.results.details.append(
            f"10. PostgreSQL: {exc} (`make postgres` installs Debian's server)"
        )
    return sides


def screen_rows(side: str, found: dict[str, Any]) -> list[Row]:
    rows = []
    for screen, samples in found["steps"][-1]["screens"].items():
        times = samples["times"]
        p50, p95 = percentile(times, 50), percentile(times, 95)
        limit = SEARCH_GOAL_MS if screen.startswith("search") else GOAL_MS
        rows.append(
            Row(
                f"10. {screen}, {side}, p50 / p95 (ms)",
                f"{p50:,.1f} / {p95:,.1f}",
                None,
                f"p95 < {limit:g} ms",
                p95 < limit,
            )
        )
    return rows


def retry_rows(side: str, found: dict[str, Any]) -> list[Row]:
    retry = found["retry"]
    moved = (
        retry["retried"] == retry["jobs"] and retry["queued_in_redis"] >= retry["jobs"]
    )
    return [
        Row(
            f"10. retry all, {retry['jobs']:,} dead jobs, {side} (s)",
            retry["seconds"],
            None,
            f"< {RETRY_GOAL_S:g} s, all retried",
            retry["seconds"] < RETRY_GOAL_S and moved,
            2,
        ),
        Row(
            f"10. retry all: peak RSS rise / Python peak, {side} (MB)",
            f"{retry['rss_mb']:,.1f} / {found['retry_memory']['python_peak_mb']:,.1f}",
            None,
        ),
    ]


def details(side: str, found: dict[str, Any]) -> list[str]:
    last = found["steps"][-1]
    sql = ", ".join(
        f"{screen} {percentile(samples['sql'], 50):.1f}"
        for screen, samples in last["screens"].items()
    )
    written = ", ".join(
        f"{step['records']:,} in {step['written_s']:.0f} s" for step in found["steps"]
    )
    retry = found["retry"]
    return [
        f"10. {side} ({found['version']}): records written (cumulative steps): "
        f"{written}; SQL time per request at {last['records']:,}, median (ms): {sql}",
        f"10. {side} retry all: {retry['retried']:,} of {retry['jobs']:,} jobs "
        f"pending again, {retry['queued_in_redis']:,} in the RQ queues",
    ]


def figure(ctx: Context) -> None:
    sides = measure_sides(ctx)
    for side, found in sides.items():
        ctx.results.rows += screen_rows(side, found)
    for side, found in sides.items():
        ctx.results.rows += retry_rows(side, found)
        ctx.results.details += details(side, found)
    ctx.draw("render-by-records", lambda path: plots.render_by_records(sides, path))
