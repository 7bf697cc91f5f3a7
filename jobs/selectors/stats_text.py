"""The overview as the CLI shows it: a terminal table and stable JSON."""

from __future__ import annotations

from typing import Any

from jobs.selectors.overview import Overview

COLUMNS = (
    "queue",
    "state",
    "queued",
    "scheduled",
    "running",
    "deferred",
    "dead",
    "oldest wait",
    "done/min",
    "failed/min",
    "workers",
)


def stats_json(view: Overview) -> dict[str, Any]:
    return {
        "redis_ok": view.redis_ok,
        "at": view.at.isoformat(),
        "queues": [
            {
                "name": row.name,
                "paused": row.paused,
                "queued": row.depth.queued if row.depth else None,
                "scheduled": row.depth.scheduled if row.depth else None,
                "started": row.depth.started if row.depth else None,
                "deferred": row.depth.deferred if row.depth else None,
                "dead": row.dead,
                "oldest_wait_seconds": row.oldest_wait,
                "processed_per_minute": row.processed_per_min,
                "failed_per_minute": row.failed_per_min,
                "workers": row.workers,
            }
            for row in view.queues
        ],
        "workers_alive": view.headline.workers_alive,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def stats_table(view: Overview) -> str:
    rows = [COLUMNS]
    for q in stats_json(view)["queues"]:
        rows.append(
            (
                q["name"],
                "paused" if q["paused"] else "running",
                _cell(q["queued"]),
                _cell(q["scheduled"]),
                _cell(q["started"]),
                _cell(q["deferred"]),
                _cell(q["dead"]),
                _cell(q["oldest_wait_seconds"]),
                _cell(q["processed_per_minute"]),
                _cell(q["failed_per_minute"]),
                _cell(q["workers"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    state = "" if view.redis_ok else "  (Redis unavailable: live figures missing)"
    return "\n".join([f"jobs at {view.at:%H:%M:%S}{state}", *lines])
