"""The monitor process: records history, relays the outbox, (later) alerts.

`python manage.py jobs monitor` runs it. It survives Redis and database
outages: a failing cycle is logged and retried with a capped backoff, and no
event is acknowledged before it is written.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from jobs.recorder import Recorder
from jobs.services import outbox_relay
from jobs.workers import recover_abandoned

log = logging.getLogger("jobs.monitor")

RELAY_EVERY = 1.0
RECOVER_EVERY = 2.0
CLAIM_EVERY = 15.0
MAX_BACKOFF = 5.0


class Monitor:
    def __init__(self) -> None:
        self.recorder = Recorder()
        self.stopping = False
        self._next_relay = 0.0
        self._next_claim = 0.0
        self._next_recover = 0.0

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stopping = True

    def tick(self, block_ms: int = 500) -> int:
        applied = self.recorder.drain(block_ms=block_ms)
        now = time.monotonic()
        if now >= self._next_relay:
            outbox_relay()
            self._next_relay = now + RELAY_EVERY
        if now >= self._next_recover:
            for found in recover_abandoned(settings.JOB_QUEUES):
                log.warning(
                    "recovered a job from a lost worker",
                    extra={
                        "job_id": found.job_id,
                        "worker": found.worker,
                        "requeued": found.requeued,
                    },
                )
            self._next_recover = now + RECOVER_EVERY
        if now >= self._next_claim:
            self.recorder.claim_abandoned()
            self._next_claim = now + CLAIM_EVERY
        return applied

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("monitor started", extra={"consumer": self.recorder.consumer})
        backoff = 0.5
        while not self.stopping:
            try:
                self.tick()
                backoff = 0.5
            except (redis.exceptions.RedisError, DatabaseError) as exc:
                log.warning(
                    "monitor cycle failed; retrying",
                    extra={"error": str(exc), "retry_in": backoff},
                )
                close_old_connections()
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
        log.info("monitor stopped")
