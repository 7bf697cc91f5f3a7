"""Counters that stay right with forked job processes and many worker hosts.

They live in Redis, written inside the pipelines workers already send:
- per-minute buckets (`console:stats:<epoch minute>`, kept 25 hours) of jobs
  processed and failed per queue, and the oldest waiting job's age per queue
  (sampled by the monitor), for the console's charts and rates;
- lifetime totals per queue and task (`console:totals`) and a duration
  histogram per task (`console:durations`), for Prometheus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

BUCKET_PREFIX = "console:stats:"
BUCKET_TTL = 25 * 3600
TOTALS = "console:totals"
DURATIONS = "console:durations"
DURATION_BUCKETS = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
OUTCOMES = ("processed", "failed", "retried", "dead")


def minute(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // 60)


def bucket_key(at_minute: int) -> str:
    return f"{BUCKET_PREFIX}{at_minute}"


def count_outcome(
    pipe: Any,
    *,
    queue: str,
    task: str,
    outcome: str,
    duration: float | None,
    at: float | None = None,
) -> None:
    """Queue the counter updates for one finished attempt into `pipe`.

    outcome is one of OUTCOMES: "processed" (succeeded), "failed" (failed and
    will be retried: also counted as "retried"), "dead" (failed for good).
    """
    key = bucket_key(minute(at))
    pipe.hincrby(
        key, f"{queue}|{'processed' if outcome == 'processed' else 'failed'}", 1
    )
    pipe.expire(key, BUCKET_TTL)
    names = (
        ["processed"]
        if outcome == "processed"
        else (["failed", "retried"] if outcome == "failed" else ["failed", "dead"])
    )
    for name in names:
        pipe.hincrby(TOTALS, f"{queue}|{task}|{name}", 1)
    if duration is not None:
        le = next((b for b in DURATION_BUCKETS if duration <= b), "inf")
        pipe.hincrby(DURATIONS, f"{task}|{le}", 1)
        pipe.hincrbyfloat(DURATIONS, f"{task}|sum", duration)


def record_oldest_wait(
    pipe: Any, ages: dict[str, float], at: float | None = None
) -> None:
    key = bucket_key(minute(at))
    for queue, age in ages.items():
        pipe.hset(key, f"{queue}|oldest_wait", f"{age:.1f}")
    pipe.expire(key, BUCKET_TTL)


@dataclass(frozen=True)
class Point:
    minute: int
    values: dict[str, float]

    def get(self, queue: str, name: str) -> float:
        return self.values.get(f"{queue}|{name}", 0.0)

    def total(self, name: str) -> float:
        return sum(v for k, v in self.values.items() if k.endswith(f"|{name}"))


def series(client: Any, minutes: int, now: float | None = None) -> list[Point]:
    """The last `minutes` buckets, oldest first (missing minutes are zeros)."""
    last = minute(now)
    wanted = list(range(last - minutes + 1, last + 1))
    with client.pipeline(transaction=False) as pipe:
        for m in wanted:
            pipe.hgetall(bucket_key(m))
        rows = pipe.execute()
    return [
        Point(m, {k.decode(): float(v) for k, v in row.items()})
        for m, row in zip(wanted, rows, strict=True)
    ]


def totals(client: Any) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for field_name, value in client.hgetall(TOTALS).items():
        queue, task, name = field_name.decode().split("|", 2)
        found[(queue, task, name)] = int(value)
    return found


def durations(client: Any) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for field_name, value in client.hgetall(DURATIONS).items():
        task, le = field_name.decode().rsplit("|", 1)
        found.setdefault(task, {})[le] = float(value)
    return found
