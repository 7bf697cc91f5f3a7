"""PostgreSQL stopped under load: jobs keep running (they need only Redis),
and once it is back the history is complete: every event the workers sent
while it was down is recorded, which `jobs reconcile` confirms."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.chaos.load import start_processes, submit_many, submitting
from bench.chaos.outcome import (
    Outcome,
    count_succeeded,
    history_checks,
    processes_check,
    wait_until,
)
from bench.chaos.postgres import PrivatePostgres
from bench.chaos.sizes import Sizes
from jobs.backend import connect, queues

#: The events every job that ran once leaves in its history.
TIMELINE = ("enqueued", "started", "succeeded")


def database_outage(
    directory: Path, postgres: PrivatePostgres, sizes: Sizes
) -> Outcome:
    from django.db import connections

    from bench.procs import MANAGE, Fleet

    down = sizes.outage
    outcome = Outcome(f"PostgreSQL stopped {down:.0f} s under load")
    with Fleet(directory) as fleet:
        start_processes(fleet)
        backlog = submit_many(
            "demo.sleep", {"seconds": 0.02}, sizes.database_backlog, outcome
        )
        with submitting(pause=0.05) as load:
            wait_until(lambda: _finished_in_redis() >= 20, 120)
            connections.close_all()  # this thread reads nothing while it is down
            before = _finished_in_redis()
            postgres.stop(mode="immediate")  # as a crash or a failover would
            time.sleep(down)
            ran_meanwhile = _finished_in_redis() - before
            postgres.start()
            back = time.monotonic()
            time.sleep(2)
        ids = backlog + load.accepted
        done = wait_until(lambda: count_succeeded(ids) == len(ids), 300)
        caught_up = time.monotonic() - back
        missing = _missing_events(ids)
        reconcile = subprocess.run(
            [*MANAGE, "jobs", "reconcile", "--dry-run", "--json"],
            env=dict(os.environ, PROCESS_NAME="reconcile"),
            capture_output=True,
            text=True,
            check=False,
        )
        processes_check(outcome, fleet)
        outcome.figures.update(
            {
                "jobs run while the database was down": ran_meanwhile,
                "submissions accepted": len(load.accepted),
                "submissions refused while it was down": len(load.refused),
                "history complete after it returned (s)": round(caught_up, 1),
                "events missing": missing,
                "jobs reconcile": _summary(reconcile),
            }
        )
    outcome.check("jobs kept running", ran_meanwhile > 0)
    outcome.check("every accepted job succeeded", done)
    outcome.check("0 events lost", missing == 0)
    outcome.check(
        "`jobs reconcile` finds no difference",
        reconcile.returncode == 0 and json.loads(reconcile.stdout or "null") == [],
    )
    history_checks(outcome, ids)
    return outcome


def _finished_in_redis() -> int:
    """Jobs finished, read from RQ's registries (not the database)."""

    client = connect.connection()
    return sum(
        int(client.zcard(f"rq:finished:{lane}")) for lane in queues.lanes("default")
    )


def _missing_events(ids: list[str]) -> int:
    """(job, kind) pairs of TIMELINE absent from the recorded history."""
    from jobs.models import JobEvent

    seen: Counter[str] = Counter()
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = JobEvent.objects.filter(job_id__in=chunk, kind__in=TIMELINE)
        seen.update(f"{j}:{k}" for j, k in rows.values_list("job_id", "kind"))
    return sum(1 for job in ids for kind in TIMELINE if not seen[f"{job}:{kind}"])


def _summary(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode != 0:
        return f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return f"{len(json.loads(done.stdout))} difference(s)"
