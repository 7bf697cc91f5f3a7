"""`python -m bench.monitor_live [--jobs N] [--rate R] [--database URL]`: the
monitor's CPU per job live, beside two fork workers (issue 19: <= 1 ms).

Figure 3 times the recorder draining a backlog in the bench's own process;
here the monitor is the process production runs (`manage.py jobs monitor`),
next to two `rqworker` processes (fork per job), while no-op jobs
(demo.echo) stream in: all at once (`--rate 0`, the workers' pace sets the
stream's) or `--rate` jobs a second, each its own submission. Its CPU
(user + system, /proc/<pid>/stat) is read from the first submission until
every job is `succeeded` in the database, and divided by the jobs; its idle
rate (its periodic duties, no job) is read just before, over `--idle`
seconds, and given beside it. Figure 3 of the bench gives the same, at 20
jobs/s and all at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench import environment

if TYPE_CHECKING:
    from bench.procs import Fleet

BASE_DIR = Path(environment.__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_live")
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="jobs/s (0: all in one submission)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds read")
    parser.add_argument("--database", help="DATABASE_URL (default: a SQLite file)")
    parser.add_argument("--profile", type=Path, help="cProfile the monitor into this")
    return parser.parse_args(argv)


def _submit(count: int, rate: float) -> None:
    from jobs.services import SubmitRequest, job_submit, job_submit_many

    if not rate:
        job_submit_many(
            requests=[
                SubmitRequest(task="demo.echo", payload={"text": str(i)})
                for i in range(count)
            ]
        )
        return
    start = time.monotonic()
    for i in range(count):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        job_submit(task="demo.echo", payload={"text": str(i)})


def _wait_recorded(
    count: int, fleet: Fleet, timeout: float = 300.0
) -> tuple[float, int]:
    """When `count` jobs were recorded as succeeded, and how many were."""
    from jobs.models import JobRecord

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        fleet.check_alive()
        done = JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()
        if done >= count:
            return time.monotonic(), done
        time.sleep(0.05)
    raise TimeoutError(f"{count} jobs not all recorded after {timeout:g} s")


@dataclass(frozen=True)
class Live:
    """One round: `jobs` submitted and recorded in `seconds`, the monitor
    spending `cpu_seconds` meanwhile and `idle_cpu` CPU-seconds a second
    idle just before."""

    jobs: int
    seconds: float
    cpu_seconds: float
    idle_cpu: float
    recorded: int

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000 * self.cpu_seconds / self.jobs if self.jobs else 0.0

    @property
    def idle_ms_per_job(self) -> float:
        return 1000 * self.idle_cpu * self.seconds / self.jobs if self.jobs else 0.0

    def line(self) -> str:
        return (
            f"{self.jobs} jobs in {self.seconds:.1f} s "
            f"({self.jobs / self.seconds:.0f} jobs/s); monitor CPU "
            f"{self.cpu_seconds:.2f} s = {self.cpu_ms_per_job:.2f} ms/job; idle "
            f"{1000 * self.idle_cpu:.1f} ms/s (= {self.idle_ms_per_job:.2f} ms/job "
            "of that)"
        )


def live(
    directory: Path,
    jobs: int,
    rates: Sequence[float],
    idle: float = 5.0,
    profile: Path | None = None,
) -> list[Live]:
    """A round of `jobs` for each rate, in one fleet: the monitor and two
    workers, started (and their start-up left to settle) before the first."""
    from bench import procs
    from bench.reset import reset

    reset()
    found: list[Live] = []
    with procs.Fleet(directory) as fleet:
        argv = procs.monitor()
        if profile:
            argv[1:1] = ["-m", "cProfile", "-o", str(profile.resolve())]
        monitor = fleet.start("monitor", argv)
        workers = [
            fleet.start(f"live-worker-{n}", procs.console_worker()) for n in (1, 2)
        ]
        procs.wait_idle(fleet, workers)
        time.sleep(3.0)  # the monitor's start-up and first duties
        for rate in rates:
            before = cpu_seconds(monitor)
            time.sleep(idle)
            idle_cpu = (cpu_seconds(monitor) - before) / idle
            before, start = cpu_seconds(monitor), time.monotonic()
            _submit(jobs, rate)
            end, recorded = _wait_recorded(jobs * (len(found) + 1), fleet)
            found.append(
                Live(
                    jobs,
                    end - start,
                    cpu_seconds(monitor) - before,
                    idle_cpu,
                    recorded - jobs * len(found),
                )
            )
    return found


def measure(directory: Path, args: argparse.Namespace) -> None:
    rounds = live(
        directory, args.jobs, [args.rate] * args.rounds, args.idle, args.profile
    )
    for number, found in enumerate(rounds, 1):
        print(f"round {number}: {found.line()}", flush=True)
    for line in environment.log_problems_in(directory, exclude=directory / "-"):
        print(f"logged by a process: {line}")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as name:
        directory = Path(name)
        environment.compile_bytecode(BASE_DIR)
        server = environment.start_server(directory)
        try:
            environment.setup_django(directory, server.url, args.database)
            environment.log_to_file(directory / "bench.log")
            measure(directory, args)
        finally:
            from django.db import connections

            connections.close_all()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
