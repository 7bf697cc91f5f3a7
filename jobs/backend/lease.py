"""The lease on a running job (fencing).

The monitor takes a job back once its heartbeat lapses (recovery.recover_abandoned)
and runs it on another worker. A worker cut off from Redis (its host's link down)
cannot tell, so it stops its own job process before its lease ends: the job then
runs on one host at a time, never on two."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

T = TypeVar("T")

log = logging.getLogger("jobs.worker")

#: A running job's worker heartbeats this often; a job whose heartbeat is
#: older than interval + grace belongs to a dead worker and is recovered.
JOB_MONITORING_INTERVAL = 3


HEARTBEAT_GRACE = 12


#: A worker that could not heartbeat stops its job this long before its lease
#: ends (the monitor's clock and ours, and its recovery period, 2 s).
LEASE_MARGIN = 3


class LeaseLost(Exception):  # noqa: N818 - a lease is lost, not an error of ours
    """A running job's heartbeats stopped reaching Redis for its whole lease:
    the monitor takes it back, so this worker must stop running it. Not a
    redis error, so that redis-py's retries never swallow it."""


class Lease:
    """A worker's hold on its running job: unless renewed (a heartbeat that
    got through), the job process is killed LEASE_MARGIN seconds before the
    monitor would call it lost. A timer thread, because the worker's main
    thread may be stuck in any Redis call (redis-py retries a lost
    connection for longer than the lease)."""

    def __init__(self, pid: int, until: float) -> None:
        self.pid = pid
        self.lost = False
        self._timer: threading.Timer | None = None
        self.renew(until)

    def renew(self, until: float) -> None:
        self.end()
        wait = max(0.0, until - LEASE_MARGIN - time.monotonic())
        self._timer = threading.Timer(wait, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        self.lost = True
        log.warning(
            "lease ended; stopping the job process", extra={"job_process": self.pid}
        )
        with contextlib.suppress(ProcessLookupError):
            # The job process leads its own group (RQ's fork); never ours.
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


def until_redis_answers(write: Callable[..., T], *args: Any) -> T:
    """A job that did its work as the Redis primary died must not lose its
    outcome, or it runs again: the write is tried until the promoted replica
    answers. Never past the job's lease: by then the worker has stopped this
    process (maintain_heartbeats) and the job runs elsewhere."""
    deadline = time.monotonic() + JOB_MONITORING_INTERVAL + HEARTBEAT_GRACE
    backoff = 0.1
    while True:
        try:
            return write(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if time.monotonic() + backoff >= deadline:
                raise
            log.warning(
                "redis unavailable as a job ends; trying again",
                extra={"error": str(exc), "retry_in": backoff},
            )
            time.sleep(backoff)
            backoff = min(1.0, backoff * 2)
