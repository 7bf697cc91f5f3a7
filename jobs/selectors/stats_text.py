"""The overview as the CLI and the API show it: a terminal table and stable
JSON, with the overview's figures under the names jobs.selectors.figures
gives them."""

from __future__ import annotations

from typing import Any

from jobs.selectors.figures import DEFINITIONS, JSON_KEYS
from jobs.selectors.overview import Overview

#: Live columns (from Redis) then the window's figures (from the history).
LIVE = ("queued", "scheduled", "started", "deferred")
COLUMNS = (
    "queue",
    "state",
    *LIVE,
    "oldest wait",
    "workers",
    *(DEFINITIONS[key].label for key in JSON_KEYS),
)


def stats_json(view: Overview) -> dict[str, Any]:
    headline = view.headline
    return {
        "redis_ok": view.redis_ok,
        "at": view.at.isoformat(),
        "window": {
            "minutes": headline.figures.window.minutes,
            "since": headline.figures.window.since.isoformat(),
        },
        "totals": {
            "queued": headline.waiting,
            "started": headline.running,
            "workers_alive": headline.workers_alive,
            "oldest_wait_seconds": headline.oldest_wait,
            **headline.figures.as_json(),
        },
        "queues": [
            {
                "name": row.name,
                "paused": row.paused,
                **{
                    state: getattr(row.depth, state) if row.depth else None
                    for state in LIVE
                },
                "oldest_wait_seconds": row.oldest_wait,
                "workers": row.workers,
                **row.figures.as_json(),
            }
            for row in view.queues
        ],
        "definitions": {key: DEFINITIONS[key].meaning for key in JSON_KEYS},
        "workers_alive": headline.workers_alive,
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
                *(_cell(q[state]) for state in LIVE),
                _cell(q["oldest_wait_seconds"]),
                _cell(q["workers"]),
                *(_cell(q[key]) for key in JSON_KEYS),
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
    window = view.headline.figures.window
    state = "" if view.redis_ok else "  (Redis unavailable: live figures missing)"
    return "\n".join(
        [f"jobs at {view.at:%H:%M:%S}, finished work over the {window.text}{state}"]
        + lines
    )
