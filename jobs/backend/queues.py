"""Logical queues and their lanes, and which queues are paused.

Each logical queue has three priority lanes in Redis: `NAME:high`, `NAME` and
`NAME:low`. Workers serve every high lane before any normal lane before any low
lane, so within a queue high work always runs first."""

from __future__ import annotations

from jobs.backend.connect import connection

PRIORITY_SUFFIX = {"high": ":high", "normal": "", "low": ":low"}


def lane(queue: str, priority: str) -> str:
    return f"{queue}{PRIORITY_SUFFIX[priority]}"


def lanes(queue: str) -> list[str]:
    return [lane(queue, p) for p in ("high", "normal", "low")]


def logical_queue(lane_name: str) -> str:
    for suffix in (":high", ":low"):
        if lane_name.endswith(suffix):
            return lane_name[: -len(suffix)]
    return lane_name


PAUSED_KEY = "console:paused"


def set_paused(queue: str, paused: bool) -> None:
    client = connection()
    if paused:
        client.sadd(PAUSED_KEY, queue)
    else:
        client.srem(PAUSED_KEY, queue)


def sync_paused(paused: set[str]) -> None:
    client = connection()
    stale = paused_queues() - paused
    with client.pipeline() as pipe:
        if paused:
            pipe.sadd(PAUSED_KEY, *paused)
        if stale:
            pipe.srem(PAUSED_KEY, *stale)
        pipe.execute()


def paused_queues() -> set[str]:
    return {q.decode() for q in connection().smembers(PAUSED_KEY)}
