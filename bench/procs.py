"""Real worker and scheduler processes, as production runs them.

Every child gets its own session (so a kill reaches its forked job process
too) and its own log file in the run's directory; a `Fleet` ends all the
processes it started, by pid, when it is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from django.conf import settings

from bench import plain
from jobs.backend import live

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
RQ_CLI = str(Path(sys.executable).with_name("rq"))
CELERY_CLI = str(Path(sys.executable).with_name("celery"))


def console_worker() -> list[str]:
    """`rqworker` as the README runs it; rq's own loggers at WARNING (-v 0)."""
    return [*MANAGE, "rqworker", "default", "--with-scheduler", "-v", "0"]


def plain_worker() -> list[str]:
    return [
        RQ_CLI,
        "worker",
        plain.QUEUE,
        "--url",
        settings.REDIS_URL,
        "--serializer",
        "rq.serializers.JSONSerializer",
        "--logging_level",
        "WARNING",
        "--path",
        str(BASE_DIR),
    ]


def celery_worker(name: str) -> list[str]:
    """One `celery worker` with one prefork child: the counterpart of one of
    our worker processes (see bench.scaling.NOTE)."""
    return [
        CELERY_CLI,
        "-A",
        "bench.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        "--loglevel=WARNING",
        # The start-up handshake with other nodes (one second of waiting for
        # replies on every start); nothing to learn from on one host.
        "--without-mingle",
        "-n",
        f"{name}@%h",
    ]


def scheduler() -> list[str]:
    return [*MANAGE, "rqscheduler", "--interval", "1"]


def monitor() -> list[str]:
    """The monitor process (recorder, outbox relay, recovery, sweeps)."""
    return [*MANAGE, "jobs", "monitor"]


class ChildDied(RuntimeError):
    pass


class Fleet:
    """The processes of one measurement; all ended on exit."""

    def __init__(
        self, directory: Path, graceful: bool = True, quiet: bool = False
    ) -> None:
        self.directory = directory
        self.graceful = graceful
        #: Our processes log at WARNING, as the other sides' workers do
        #: (Celery `--loglevel=WARNING`, RQ `--logging-level WARNING`): the
        #: figures that compare the sides measure jobs, not log lines.
        self.quiet = quiet
        self.children: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> int:
        quiet = {"LOG_LEVEL": "WARNING"} if self.quiet else {}
        env = dict(
            os.environ, **quiet, **(env or {}), PROCESS_NAME=name, PYTHONUNBUFFERED="1"
        )
        with (self.directory / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children[child.pid] = (name, child)
        return child.pid

    def wait_until(
        self, what: Callable[[], bool], timeout: float, poll: float = 0.05
    ) -> float:
        """time.time() once `what` holds; raises if a process of the fleet
        exits meanwhile or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not what():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached in {timeout:g} s: {what}")
            time.sleep(poll)
        return time.time()

    def check_alive(self) -> None:
        for name, child in self.children.values():
            if child.poll() is not None:
                raise ChildDied(
                    f"{name} exited ({child.returncode}): {self.tail(name)}"
                )

    def exited(self) -> list[str]:
        """The names of the processes that are no longer running."""
        return [
            name for name, child in self.children.values() if child.poll() is not None
        ]

    def tail(self, name: str, lines: int = 5) -> str:
        path = self.directory / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self, pid: int) -> None:
        """SIGKILL one worker's main process, as the OOM killer would. Its job
        process dies with it (PR_SET_PDEATHSIG); the group kill, sent while
        the worker is still unreaped, only makes sure."""
        _, child = self.children.pop(pid)
        os.kill(pid, signal.SIGKILL)
        _kill_group(child)
        child.wait()

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM (warm: an idle worker leaves at once), SIGKILL stragglers."""
        if self.graceful:
            for _, child in self.children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for _, child in self.children.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(max(0.0, deadline - time.monotonic()))
        for _, child in self.children.values():
            if child.returncode is None:
                _kill_group(child)
                child.wait()
        self.children.clear()


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's own session (it and the job process it forked).
    Only while the child is unreaped, so its pid is still its group's id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def wait_idle(fleet: Fleet, pids: list[int], timeout: float = 120.0) -> float:
    """Seconds until every pid is a registered, idle worker in Redis."""
    start = time.monotonic()
    wanted = set(pids)
    while time.monotonic() - start < timeout:
        fleet.check_alive()
        idle = {w.pid for w in live.live_workers() if w.state == "idle"}
        if wanted <= idle:
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"workers {sorted(wanted)} not idle after {timeout:g} s")


def status_kb(pid: int, key: str) -> int | None:
    """A kB figure of /proc/<pid>/status (VmRSS now, VmHWM peak)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None
