"""The monitor (history recorder, outbox relay, recovery) in a thread of the
bench process, on the bench's database, as `manage.py jobs monitor` runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager

import redis
from django.db import DatabaseError, connections

from jobs.processes.monitor import CHECKPOINT_EVERY, Monitor, checkpoint_sqlite


@contextmanager
def _thread(name: str, loop: Callable[[threading.Event], None]) -> Iterator[None]:
    """Runs loop(stop) in a daemon thread while the block runs; the loop
    returns once stop is set. Its database connections are closed after."""
    stop = threading.Event()

    def run() -> None:
        try:
            loop(stop)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def monitor(failures: list[str], block_ms: int = 200) -> ContextManager[None]:
    """Runs Monitor().tick() until the block is left; a cycle that fails is
    retried, as the real process does, and noted in `failures`."""

    def loop(stop: threading.Event) -> None:
        ticker = Monitor()
        while not stop.is_set():
            try:
                ticker.tick(block_ms=block_ms)
            except (redis.exceptions.RedisError, DatabaseError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)

    return _thread("bench-monitor", loop)


def checkpointing() -> ContextManager[None]:
    """Only the monitor's SQLite duty (fold the write-ahead log back every
    CHECKPOINT_EVERY seconds), for the latency figures: the whole monitor in
    the measuring process would take its interpreter lock from the calls
    timed, where in production it is a process of its own."""

    def loop(stop: threading.Event) -> None:
        while not stop.wait(CHECKPOINT_EVERY):
            checkpoint_sqlite()

    return _thread("bench-checkpoint", loop)
