"""Load for the outage scenarios: jobs submitted one by one from a thread,
as a web process would, counting what was accepted and what was refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.chaos.outcome import Outcome
    from bench.procs import Fleet

WORKERS = 3


def start_processes(
    fleet: Fleet, workers: int = WORKERS, extra: tuple[str, ...] = ()
) -> set[int]:
    """The monitor and `workers` workers (with `extra` options); returns the
    workers' pids."""
    from bench.procs import console_worker, monitor

    fleet.start("monitor", monitor())
    argv = [*console_worker(), *extra]
    return {fleet.start(f"w{n}", argv) for n in range(workers)}


def submit_many(
    task: str, payload: dict[str, Any], count: int, outcome: Outcome
) -> list[str]:
    """`count` jobs in one bulk submission; returns their ids.

    A submission that raises although it committed is a failed check (the
    caller was told "error" for accepted jobs); the scenario goes on with
    the jobs the database holds."""
    from django.db import DatabaseError

    from jobs import services
    from jobs.models import JobRecord

    requests = [
        services.SubmitRequest(task=task, payload=payload) for _ in range(count)
    ]
    try:
        ids = [r.pk for r in services.job_submit_many(requests=requests)]
    except DatabaseError as exc:
        outcome.check(f"the bulk submission returned ({one_line(exc)})", False)
        ids = list(JobRecord.objects.filter(task=task).values_list("pk", flat=True))
    return ids


def one_line(exc: BaseException, limit: int = 300) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]


class Submitter:
    """Submits `task` jobs until `limit` are accepted or it is stopped.

    A submission that raises (the database is down) is counted as refused;
    the thread's broken database connection is then dropped, as Django does
    between requests, so the next one reconnects.
    """

    def __init__(
        self,
        limit: int | None = None,
        pause: float = 0.0,
        task: str = "demo.echo",
        payload: dict[str, Any] | None = None,
    ) -> None:
        self.limit = limit
        self.pause = pause
        self.task = task
        self.payload = payload if payload is not None else {"text": "chaos"}
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="submitter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.accepted) >= count

    def finished(self, timeout: float) -> bool:
        """Wait for the thread to reach its limit."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        from django.db import close_old_connections, connections

        from jobs import services

        try:
            while not self._stop.is_set():
                if self.limit is not None and len(self.accepted) >= self.limit:
                    return
                try:
                    record = services.job_submit(task=self.task, payload=self.payload)
                except Exception as exc:  # noqa: BLE001 - counted, then retried
                    self.refused.append(one_line(exc))
                    close_old_connections()
                    time.sleep(0.2)
                    continue
                self.accepted.append(record.pk)
                if self.pause:
                    time.sleep(self.pause)
        finally:
            connections.close_all()


@contextmanager
def submitting(**options: Any) -> Iterator[Submitter]:
    """A Submitter running for the block (see Submitter for the options)."""
    load = Submitter(**options)
    load.start()
    try:
        yield load
    finally:
        load.stop()
