"""SIGKILL a random busy worker again and again while 3 drain the queue."""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.chaos.load import start_processes, submit_many
from bench.chaos.outcome import (
    Outcome,
    count_succeeded,
    history_checks,
    processes_check,
    wait_until,
)
from bench.chaos.sizes import Sizes

#: How long each job sleeps, on a one-job worker.
JOB_SECONDS = 0.05
#: Longest a round waits for a busy worker to kill (replacements are booting).
ROUND_WAIT = 10.0


#: The slot variant: each worker runs 4 jobs at once in threads, so a kill
#: loses 4 running jobs at a time, all to be recovered.
SLOTS = ("--concurrency", "4", "--execution", "thread")
#: The same with a forked job process per slot: a kill of the worker takes
#: its 4 job processes with it (they die with their parent).
FORK_SLOTS = ("--concurrency", "4", "--execution", "fork")
#: The same with 4 long-lived job processes, each taking the next job itself
#: as it ends one: a kill can catch one between its take and its start.
PROCESS_SLOTS = ("--concurrency", "4", "--execution", "process")


def kill_storm(
    directory: Path, sizes: Sizes, rng: random.Random, extra: tuple[str, ...] = ()
) -> Outcome:
    from bench.procs import Fleet, console_worker

    jobs, kills = sizes.kill_jobs, sizes.kills
    # N slots a worker drain N times as fast: jobs N times as long keep the
    # drain as long as the one-job workers' (else it ends before the kills).
    slots = int(extra[extra.index("--concurrency") + 1]) if extra else 1
    how = f" ({' '.join(extra)})" if extra else ""
    outcome = Outcome(f"SIGKILL {kills} busy workers{how} while 3 drain {jobs} jobs")
    with Fleet(directory) as fleet:
        workers = start_processes(fleet, extra=extra)
        ids = submit_many("demo.sleep", {"seconds": JOB_SECONDS * slots}, jobs, outcome)
        killed = 0
        while killed < kills:
            time.sleep(0.5)
            busy = _busy_among(workers, ROUND_WAIT)
            if not busy:
                break  # nothing left running: the queue is drained
            victim = rng.choice(busy)
            fleet.kill(victim)
            workers.discard(victim)
            killed += 1
            workers.add(fleet.start(f"r{killed}", [*console_worker(), *extra]))
        done = wait_until(lambda: count_succeeded(ids) == jobs, 240)
        processes_check(outcome, fleet)
    outcome.figures["workers killed"] = killed
    outcome.check(f"{kills} busy workers killed", killed == kills)
    outcome.check("all jobs succeeded (lost 0)", done)
    history_checks(outcome, ids)
    return outcome


def _busy_among(pids: set[int], timeout: float) -> list[int]:
    """Those of `pids` running a job, as soon as there is one."""
    from jobs.backend import live

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [w.pid for w in live.live_workers() if w.state == "busy"]
        found = sorted(pid for pid in busy if pid in pids)
        if found:
            return found
        time.sleep(0.1)
    return []
