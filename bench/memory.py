"""Figure 5: peak resident memory of one worker process while it drains."""

from __future__ import annotations

from bench import drain
from bench.context import Context
from bench.results import progress
from bench.table import Row

GOAL_MB = 60.0
REQUIREMENT_MB = 100.0
NOTE = (
    "5: one worker process draining N jobs (the same drain as figure 4's one "
    "worker when the sizes agree); its main process's VmRSS sampled every 50 ms "
    "from /proc; MB = 10^6 bytes. The forked job processes are separate, short "
    "lived and share most pages with it: not counted."
)


def _mb(kb: int) -> float:
    return kb * 1024 / 1e6


def figure(ctx: Context) -> None:
    jobs = ctx.sizes.memory
    progress(f"figure 5: worker memory, one worker draining {jobs} jobs")
    ours = drain.measure(ctx, "ours", 1, jobs)
    base = drain.measure(ctx, "plain", 1, jobs)
    peak, base_peak = _mb(ours.peak_rss_kb), _mb(base.peak_rss_kb)
    ctx.results.rows += [
        Row(
            f"5. worker peak RSS, {jobs:,} jobs (MB)",
            peak,
            base_peak,
            f"< {GOAL_MB:g} MB",
            peak < GOAL_MB,
            1,
        ),
        Row(
            "5. worker peak RSS (MB), requirement",
            peak,
            base_peak,
            f"< {REQUIREMENT_MB:g} MB",
            peak < REQUIREMENT_MB,
            1,
        ),
    ]
    ctx.results.details.append(
        f"5. RSS when idle, before the drain: ours {_mb(ours.idle_rss_kb):.1f} MB, "
        f"plain RQ {_mb(base.idle_rss_kb):.1f} MB; kernel's peak (VmHWM) at the "
        f"end: ours {_mb(ours.hwm_kb):.1f} MB, plain RQ {_mb(base.hwm_kb):.1f} MB; "
        f"jobs done: ours {ours.done}/{jobs} succeeded in DB, plain RQ "
        f"{base.done}/{jobs} finished"
    )
