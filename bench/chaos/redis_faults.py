"""The Redis server SIGKILLed (AOF, fsync always) and stopped for a while,
both under load: every accepted submission runs, exactly once."""

from __future__ import annotations

import time
from pathlib import Path

from bench.chaos.load import start_processes, submitting
from bench.chaos.outcome import (
    Outcome,
    count_succeeded,
    history_checks,
    processes_check,
    wait_until,
)
from bench.chaos.sizes import Sizes
from console.localredis import LocalRedis
from jobs.backend import connect


def redis_kill(directory: Path, server: LocalRedis, sizes: Sizes) -> Outcome:
    """SIGKILL the server mid-load and start it again from its AOF, written
    with `appendfsync always`: what Redis acknowledged is on disk."""
    from bench.procs import Fleet

    jobs, kills = sizes.redis_kill_jobs, sizes.redis_kills
    outcome = Outcome(
        f"Redis SIGKILLed {kills}x (AOF, appendfsync always)"
        f" while {jobs} jobs are submitted and run"
    )
    server.appendfsync = "always"
    server.restart()
    try:
        fsync = _appendfsync()
        outcome.figures["appendfsync"] = fsync
        outcome.check("the server fsyncs every write", fsync == "always")
        with Fleet(directory) as fleet, submitting(limit=jobs) as load:
            start_processes(fleet)
            restarts = []
            for k in range(1, kills + 1):
                load.wait_accepted(jobs * k // (kills + 1), timeout=600)
                began = time.monotonic()
                server.stop(kill=True)
                server.start()
                restarts.append(round(time.monotonic() - began, 2))
            submitted = load.finished(900)
            ids = list(load.accepted)
            done = wait_until(lambda: count_succeeded(ids) == len(ids), 600)
            processes_check(outcome, fleet)
            outcome.figures.update(
                {
                    "accepted": len(ids),
                    "refused": len(load.refused),
                    "kills": len(restarts),
                    "restart from AOF (s)": restarts,
                    "accepted but never succeeded": len(ids) - count_succeeded(ids),
                }
            )
            outcome.check(
                f"all {jobs} submissions accepted", submitted and not load.refused
            )
            outcome.check("accepted submissions lost 0", done)
            history_checks(outcome, ids)
    finally:
        server.appendfsync = "everysec"
        server.restart()
    return outcome


def redis_outage(directory: Path, server: LocalRedis, sizes: Sizes) -> Outcome:
    """Submissions during the outage wait in the outbox and all run after;
    workers take jobs again within 5 s of Redis answering."""
    from bench.procs import Fleet
    from jobs import services
    from jobs.backend import queueing

    down = sizes.outage
    outcome = Outcome(f"Redis down {down:.0f} s under load")
    with Fleet(directory) as fleet, submitting(pause=0.05) as load:
        start_processes(fleet)
        time.sleep(3)
        server.stop()
        time.sleep(down)
        server.start()
        back = time.monotonic()
        probe = services.job_submit(task="demo.echo", payload={"text": "probe"}).pk
        resumed = wait_until(
            lambda: queueing.statuses([probe])[probe] in ("started", "finished"), 60
        )
        took = time.monotonic() - back
        time.sleep(2)
        load.stop()
        ids = [*load.accepted, probe]
        done = wait_until(lambda: count_succeeded(ids) == len(ids), 300)
        processes_check(outcome, fleet)
        outcome.figures.update(
            {
                "accepted": len(ids),
                "refused": len(load.refused),
                "first job running after Redis returned (s)": round(took, 2),
            }
        )
    outcome.check("every submission accepted", not load.refused)
    outcome.check("workers work again within 5 s", resumed and took < 5)
    outcome.check("every accepted submission ran", done)
    history_checks(outcome, ids)
    return outcome


def _appendfsync() -> str:

    return str(connect.connection().config_get("appendfsync")["appendfsync"])
