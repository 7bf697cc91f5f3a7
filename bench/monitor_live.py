"""`python -m bench.monitor_live [--jobs N] [--rate R] [--database URL]`: the
monitor's CPU per job live, beside two fork workers (issue 19: <= 1 ms).

Figure 3 times the recorder draining a backlog in the bench's own process;
here the monitor is the process production runs (`manage.py jobs monitor`),
next to two `rqworker` processes (fork per job), while no-op jobs
(demo.echo) stream in: all at once (`--rate 0`, the workers' pace sets the
stream's) or `--rate` jobs a second, each its own submission. Its CPU
(user + system, /proc/<pid>/stat) is read from the first submission until
every job is `succeeded` in the database, and divided by the jobs; its idle
rate (its periodic duties, no job) is read first, over the same length of
time, and given beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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


def _wait_recorded(count: int, fleet: Fleet, timeout: float = 300.0) -> float:
    from jobs.models import JobRecord

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        fleet.check_alive()
        done = JobRecord.objects.filter(status=JobRecord.Status.SUCCEEDED).count()
        if done >= count:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"{count} jobs not all recorded after {timeout:g} s")


def measure(directory: Path, args: argparse.Namespace) -> None:
    from bench import procs
    from bench.reset import reset

    reset()
    with procs.Fleet(directory) as fleet:
        argv = procs.monitor()
        if args.profile:
            argv[1:1] = ["-m", "cProfile", "-o", str(args.profile.resolve())]
        monitor = fleet.start("monitor", argv)
        workers = [fleet.start(f"worker-{n}", procs.console_worker()) for n in (1, 2)]
        procs.wait_idle(fleet, workers)
        time.sleep(3.0)  # the monitor's start-up and first duties
        for number in range(args.rounds):
            before = cpu_seconds(monitor)
            time.sleep(args.idle)
            idle = (cpu_seconds(monitor) - before) / args.idle
            before, start = cpu_seconds(monitor), time.monotonic()
            _submit(args.jobs, args.rate)
            end = _wait_recorded(args.jobs * (number + 1), fleet)
            used = cpu_seconds(monitor) - before
            wall = end - start
            print(
                f"round {number + 1}: {args.jobs} jobs in {wall:.1f} s "
                f"({args.jobs / wall:.0f} jobs/s); monitor CPU {used:.2f} s = "
                f"{1000 * used / args.jobs:.2f} ms/job; idle {1000 * idle:.1f} ms/s "
                f"(= {1000 * idle * wall / args.jobs:.2f} ms/job of that)",
                flush=True,
            )
    problems = environment.log_problems_in(directory, exclude=directory / "none")
    for line in problems:
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
