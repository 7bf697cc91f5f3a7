"""The monitor process: records history, relays the outbox, (later) alerts.

`python manage.py jobs monitor` runs it. It survives Redis and database
outages: a failing cycle is logged and retried with a capped backoff, and no
event is acknowledged before it is written.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from jobs import stats
from jobs.backend import connect, live
from jobs.backend.errors import BackendError
from jobs.backend.recovery import recover_abandoned
from jobs.processes import alerts, schedules
from jobs.processes.recorder import BATCH, Recorder
from jobs.services import outbox_relay, queue_sync_paused
from jobs.services.failover import redis_failover_record
from jobs.services.reconcile import LOST_SETTLE, stranded_sweep

log = logging.getLogger("jobs.monitor")

RELAY_EVERY = 1.0
#: Workers seen alive in the last hour, shown as dead once their entry expires.
WORKERS_SEEN_FOR = 3600.0
RECOVER_EVERY = 2.0
PAUSE_SYNC_EVERY = 2.0
SAMPLE_EVERY = 10.0
ALERTS_EVERY = 10.0
STRANDED_EVERY = 30.0
CLAIM_EVERY = 15.0
CHECKPOINT_EVERY = 5.0
PRIMARY_EVERY = 1.0
#: After a failover the sweep for lost jobs runs at once and once more this
#: much later (two sightings, LOST_SETTLE apart, make a job lost), not 30 s.
FAILOVER_SWEEP_EVERY = LOST_SETTLE + 1.0
MAX_BACKOFF = 5.0
#: After a partial batch (the workers are busy), wait before the next read, so
#: that the events of several jobs go in one transaction: a batch's fixed cost
#: (a read, a transaction, an acknowledgement: about 1 ms of CPU) was most of
#: the recording's CPU per job when batches held one job or two. The wait aims
#: at LINGER_TARGET events a batch at the pace the last batch came in, within
#: LINGER_MIN and LINGER_MAX (the console sees a job's change within ~0.55 s;
#: at a steady 20 jobs/s a 0.2 s cap made each batch ~4 jobs and the batches'
#: fixed cost a quarter of the recording's CPU).
#: An idle stream still hands its first event over at once.
LINGER_MIN = 0.02
LINGER_MAX = 0.5
LINGER_TARGET = 60


def linger(events: int, gathered: float) -> float:
    """Seconds to wait after a batch of `events` entries that came in over
    `gathered` seconds (since the previous batch): none after an empty or a
    full batch (nothing to wait for, or more waiting already)."""
    if events <= 0 or events >= BATCH:
        return 0.0
    wanted = LINGER_TARGET * max(gathered, 0.0) / events
    return min(LINGER_MAX, max(LINGER_MIN, wanted))


def sample_live_state() -> None:
    """Oldest-wait per queue into this minute's stats bucket (for charts over
    time), and the workers seen alive (so dead ones can be shown as such)."""
    client = connect.connection()
    depths = live.queue_depths(settings.JOB_QUEUES)
    with client.pipeline(transaction=False) as pipe:
        stats.record_oldest_wait(
            pipe, {q: d.oldest_wait or 0.0 for q, d in depths.items()}
        )
        for worker in live.live_workers():
            pipe.hset(
                live.WORKERS_SEEN,
                worker.name,
                json.dumps(
                    {
                        "hostname": worker.hostname,
                        "pid": worker.pid,
                        "queues": worker.queues,
                        "seen": time.time(),
                    }
                ),
            )
        pipe.execute()
    forget_before = time.time() - WORKERS_SEEN_FOR
    seen = live.workers_seen()
    live.forget_workers_seen(
        [n for n, raw in seen.items() if _seen_at(raw) < forget_before]
    )


def _seen_at(raw: bytes) -> float:
    """When a worker was seen; 0 (forget it) for an entry nobody can read."""
    try:
        return float(json.loads(raw).get("seen", 0))
    except (ValueError, TypeError, AttributeError):
        return 0.0


def checkpoint_sqlite() -> None:
    """Copy SQLite's write-ahead log back into the database here, off the
    request path (PASSIVE never waits for readers or writers), so that no
    submission pays for it. Nothing to do on PostgreSQL."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")


class Monitor:
    """Runs each duty on its own period; one failing duty (Redis or the
    database down) never starves the others."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.stopping = False
        self.duties: list[tuple[str, float, Callable[[], object]]] = [
            ("relay", RELAY_EVERY, outbox_relay),
            ("pause-sync", PAUSE_SYNC_EVERY, queue_sync_paused),
            ("recover", RECOVER_EVERY, self.recover),
            ("claim", CLAIM_EVERY, self.recorder.claim_abandoned),
            ("sample", SAMPLE_EVERY, sample_live_state),
            ("alerts", ALERTS_EVERY, alerts.evaluate),
            ("stranded", STRANDED_EVERY, self.requeue_stranded),
            ("checkpoint", CHECKPOINT_EVERY, checkpoint_sqlite),
            ("primary", PRIMARY_EVERY, self.watch_primary),
        ]
        self._due: dict[str, float] = {}
        self._stranded_suspects: set[str] = set()
        self._primary: str | None = None
        self._fast_sweeps = 0

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        self.stopping = True

    def requeue_stranded(self) -> None:
        repairs, self._stranded_suspects = stranded_sweep(self._stranded_suspects)
        for diff in repairs:
            log.warning(
                "repaired a job left in limbo",
                extra={
                    "job_id": diff.job_id,
                    "redis": diff.redis,
                    "repair": diff.repair,
                },
            )

    def watch_primary(self) -> None:
        """Notice a new Redis primary (a Sentinel failover): record it, put
        back pauses and rq-scheduler's entries from the database, and sweep
        for jobs the new primary lacks now rather than in 30 s."""
        address = connect.primary_address()
        if address is None:
            return
        previous, self._primary = self._primary, address
        if previous is None or previous == address:
            return
        redis_failover_record(old=previous, new=address)
        schedules.reconcile()
        self._fast_sweeps = 2
        self._due["stranded"] = 0.0

    def _period(self, name: str, every: float) -> float:
        if name == "stranded" and self._fast_sweeps > 0:
            self._fast_sweeps -= 1
            return FAILOVER_SWEEP_EVERY
        return every

    def recover(self) -> None:
        recover_abandoned(settings.JOB_QUEUES)  # each recovery is logged

    def tick(self, block_ms: int = 500) -> int:
        """One cycle; raises the first failure after trying every duty."""
        failures: list[Exception] = []
        applied = 0
        try:
            applied = self.recorder.drain(block_ms=block_ms)
        except (BackendError, DatabaseError) as exc:
            failures.append(exc)
        now = time.monotonic()
        for name, every, duty in self.duties:
            if now < self._due.get(name, 0.0):
                continue
            try:
                duty()
                self._due[name] = now + self._period(name, every)
            except (BackendError, DatabaseError) as exc:
                failures.append(exc)
            except Exception:  # noqa: BLE001 - one broken duty must not stop the rest
                log.exception("monitor duty failed", extra={"duty": name})
                self._due[name] = now + every
        if failures:
            raise failures[0]
        return applied

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("monitor started", extra={"consumer": self.recorder.consumer})
        backoff = 0.5
        last = time.monotonic()
        while not self.stopping:
            try:
                applied = self.tick()
                backoff = 0.5
                now = time.monotonic()
                pause = linger(applied, now - last)
                last = now
                if pause and not self.stopping:
                    time.sleep(pause)
            except (BackendError, DatabaseError) as exc:
                log.warning(
                    "monitor cycle failed; retrying",
                    extra={"error": str(exc), "retry_in": backoff},
                )
                close_old_connections()
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
        self.record_the_rest()
        log.info("monitor stopped")

    def record_the_rest(self) -> None:
        """The events written since the last cycle (the dev stack stops the
        monitor after the workers), so that the history ends where they did."""
        try:
            self.recorder.drain_all()
        except (BackendError, DatabaseError) as exc:
            log.warning("events left for the next monitor", extra={"error": str(exc)})
