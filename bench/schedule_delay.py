"""Figure 7: how late an every-second schedule's jobs start.

A real scheduler process (`rqscheduler --interval 1`), one worker process
and the monitor. Delay = attempt 1's start (the worker's clock) - the due
time, which is in the firing's idempotency key `schedule:<pk>:<epoch>`.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from statistics import median

from bench import background, procs
from bench.context import Context
from bench.reset import reset
from bench.results import progress
from bench.stats import percentile
from bench.table import Row
from jobs.backend import connect
from jobs.models import Attempt, Schedule
from jobs.processes.schedules import HEARTBEAT_KEY
from jobs.services.schedules import schedule_create

GOAL_SECONDS = 1.0
NAME = "bench-every-second"
NOTE = (
    "7: an interval schedule (1 s, demo.echo, anchored on a whole second so due "
    "times are whole epochs) created once a `rqscheduler --interval 1` process "
    "and one `rqworker` process are up, with the monitor recording; delay = "
    "attempt 1's started_at - the due epoch of the idempotency key. The "
    "scheduler sleeps 1 s between its checks, so most of a delay is where that "
    "loop's phase falls within the second (anywhere from 0 to 1 s, drifting a "
    "few ms a loop): a short run samples one phase. No plain RQ figure: our "
    "scheduler is rq-scheduler's loop with our firings."
)


def _delays(schedule: Schedule) -> list[float]:
    """One delay per started firing, in order of due time."""
    rows = Attempt.objects.filter(
        job__schedule=schedule, number=1, started_at__isnull=False
    ).values_list("job__idempotency_key", "started_at")
    found = []
    for key, started in rows:
        assert key is not None and started is not None
        due = int(key.rsplit(":", 1)[1])
        found.append((due, started.timestamp() - due))
    return [delay for _, delay in sorted(found)]


def _wait_scheduler(fleet: procs.Fleet, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not connect.connection().exists(HEARTBEAT_KEY):
        fleet.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the scheduler never ran its loop")
        time.sleep(0.05)


def measure(ctx: Context, firings: int) -> list[float]:
    reset()
    with procs.Fleet(ctx.directory) as fleet:
        worker = fleet.start("schedule-worker", procs.console_worker())
        fleet.start("scheduler", procs.scheduler())
        procs.wait_idle(fleet, [worker])
        _wait_scheduler(fleet)
        with background.monitor(ctx.monitor_failures):
            start = datetime.fromtimestamp(math.ceil(time.time()) + 1, UTC)
            schedule = schedule_create(
                actor=None,
                name=NAME,
                task="demo.echo",
                payload={"text": "x"},
                interval_seconds=1,
                start_at=start,
            )
            deadline = time.monotonic() + 3 * firings + 60
            while len(delays := _delays(schedule)) < firings:
                fleet.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(delays)}/{firings} firings started")
                time.sleep(0.2)
            Schedule.objects.filter(pk=schedule.pk).update(enabled=False)
    return delays[:firings]


def figure(ctx: Context) -> None:
    firings = ctx.sizes.firings
    progress(f"figure 7: schedule delay, {firings} firings of an every-second schedule")
    delays = measure(ctx, firings)
    middle = median(delays)
    ctx.results.rows += [
        Row(
            f"7. schedule delay, median of {firings} (s)",
            middle,
            None,
            f"< {GOAL_SECONDS:g} s",
            middle < GOAL_SECONDS,
            3,
        ),
        Row("7. schedule delay p99 (s)", percentile(delays, 99), None, decimals=3),
    ]
    ctx.results.details.append(
        f"7. delays (s): min {min(delays):.3f}, max {max(delays):.3f}"
    )
