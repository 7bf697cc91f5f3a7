"""Figure 5: peak resident memory of one worker process while it drains."""

from __future__ import annotations

import os
import subprocess

from bench import drain, pg, procs
from bench.context import Context
from bench.results import progress
from bench.table import Row

GOAL_MB = 60.0
REQUIREMENT_MB = 100.0
NOTE = (
    "5: one worker process draining N jobs (the same drain as figure 4's one "
    "worker when the sizes agree); its main process's VmRSS sampled every 50 ms "
    "from /proc; MB = 10^6 bytes. The forked job processes are separate, short "
    "lived and share most pages with it: not counted. On PostgreSQL (what "
    "production uses) the same worker is pointed at a private server's "
    "migrated database, and so loads psycopg and libpq where the other loads "
    "sqlite3; the history is recorded by the bench either way. The bench runs "
    "in the development virtualenv, where Playwright brings greenlet, which "
    "RQ imports when present (both sides, about 1.2 MB; a production install "
    "has none); the project's bytecode is compiled ahead, as the Docker "
    "image does."
)


def _mb(kb: int) -> float:
    return kb * 1024 / 1e6


def _rows(database: str, peak: float, base_peak: float, jobs: int) -> list[Row]:
    return [
        Row(
            f"5. worker peak RSS, {jobs:,} jobs, {database} (MB)",
            peak,
            base_peak,
            f"< {GOAL_MB:g} MB",
            peak < GOAL_MB,
            1,
        ),
        Row(
            f"5. worker peak RSS, {database} (MB), requirement",
            peak,
            base_peak,
            f"< {REQUIREMENT_MB:g} MB",
            peak < REQUIREMENT_MB,
            1,
        ),
    ]


def _on_postgres(ctx: Context, jobs: int) -> drain.Drain | str:
    """Our worker's drain with a private PostgreSQL server as its database;
    why not, when no server can be started here."""
    try:
        with pg.PrivatePostgres() as server:
            subprocess.run(
                [*procs.MANAGE, "migrate", "-v", "0"],
                env={**os.environ, "DATABASE_URL": server.url},
                check=True,
            )
            return drain.measure(ctx, "ours", 1, jobs, database_url=server.url)
    except pg.PostgresUnavailable as exc:
        return f"{exc} (`make postgres-bin` installs Debian's server)"


def figure(ctx: Context) -> None:
    jobs = ctx.sizes.memory
    progress(f"figure 5: worker memory, one worker draining {jobs} jobs")
    ours = drain.measure(ctx, "ours", 1, jobs)
    base = drain.measure(ctx, "plain", 1, jobs)
    base_peak = _mb(base.peak_rss_kb)
    ctx.results.rows += _rows("SQLite", _mb(ours.peak_rss_kb), base_peak, jobs)
    progress("figure 5: the same worker on PostgreSQL (private server)")
    on_pg = _on_postgres(ctx, jobs)
    if isinstance(on_pg, str):
        ctx.results.rows.append(
            Row("5. worker on PostgreSQL", "not measured", None, "measured", False)
        )
        ctx.results.details.append(f"5. PostgreSQL: {on_pg}")
    else:
        ctx.results.rows += _rows("PostgreSQL", _mb(on_pg.peak_rss_kb), base_peak, jobs)
        ctx.results.rows.append(
            Row(
                "5. jobs done by the worker on PostgreSQL",
                f"{on_pg.done}/{jobs}",
                None,
                "all",
                on_pg.done == jobs,
                required=True,
            )
        )
        ctx.results.details.append(
            f"5. on PostgreSQL: RSS when idle {_mb(on_pg.idle_rss_kb):.1f} MB, "
            f"kernel's peak (VmHWM) {_mb(on_pg.hwm_kb):.1f} MB, jobs done "
            f"{on_pg.done}/{jobs} succeeded in DB"
        )
    ctx.results.details.append(
        f"5. RSS when idle, before the drain: ours {_mb(ours.idle_rss_kb):.1f} MB, "
        f"plain RQ {_mb(base.idle_rss_kb):.1f} MB; kernel's peak (VmHWM) at the "
        f"end: ours {_mb(ours.hwm_kb):.1f} MB, plain RQ {_mb(base.hwm_kb):.1f} MB; "
        f"jobs done: ours {ours.done}/{jobs} succeeded in DB, plain RQ "
        f"{base.done}/{jobs} finished"
    )
