"""The monitor (history recorder, outbox relay, recovery) in a thread of the
bench process, on the bench's database, as `manage.py jobs monitor` runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.db import DatabaseError, connections

from jobs.monitor import CHECKPOINT_EVERY, Monitor, checkpoint_sqlite


@contextmanager
def monitor(failures: list[str], block_ms: int = 200) -> Iterator[None]:
    """Runs Monitor().tick() until the block is left; a cycle that fails is
    retried, as the real process does, and noted in `failures`."""
    stop = threading.Event()

    def loop() -> None:
        ticker = Monitor()
        try:
            while not stop.is_set():
                try:
                    ticker.tick(block_ms=block_ms)
                except (redis.exceptions.RedisError, DatabaseError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.2)
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, name="bench-monitor", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def checkpointing() -> Iterator[None]:
    """Only the monitor's SQLite duty (fold the write-ahead log back every
    CHECKPOINT_EVERY seconds), for the latency figures: the whole monitor in
    the measuring process would take its interpreter lock from the calls
    timed, where in production it is a process of its own."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(CHECKPOINT_EVERY):
                checkpoint_sqlite()
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, name="bench-checkpoint", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
