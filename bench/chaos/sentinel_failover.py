"""The Redis primary SIGKILLed under load, with a replica and three Sentinels
(issue 20): every process follows the promoted replica, and every accepted
submission runs exactly once, those the replica never received included."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.chaos.load import start_processes, submitting
from bench.chaos.outcome import (
    Outcome,
    count_succeeded,
    history_checks,
    processes_check,
    wait_until,
)
from bench.chaos.sizes import Sizes
from console.localsentinel import SentinelGroup
from jobs.backend import connect

#: Sentinel's silence before it calls the primary down, and the failover's
#: own timeout: small, so that the scenario measures seconds.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
#: In the "cut" variant replication stops this long before the kill, so that
#: the replica surely misses the last acknowledged writes (loopback
#: replication is too quick to lose any by chance): their recovery from the
#: database is what is measured, and its cost (jobs that had finished on the
#: old primary run again).
CUT_BEFORE_KILL = 0.5


@contextmanager
def pointed_at(group: SentinelGroup) -> Iterator[None]:
    """This process's settings and its children's environment on the group
    (through its sentinels), then back as they were."""
    from django.conf import settings

    from jobs import conf

    names = [*group.settings(), "RQ_QUEUES"]
    saved = {name: getattr(settings, name) for name in names}
    saved_env = {name: os.environ.get(name) for name in group.env()}
    for name, value in group.settings().items():
        setattr(settings, name, value)
    settings.RQ_QUEUES = conf.rq_sentinel_queues(
        conf.redis_target(), settings.JOB_QUEUES, conf.get("REDIS_SOCKET_TIMEOUT")
    )
    os.environ.update(group.env())
    connect._connections.clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        for name, env_value in saved_env.items():
            if env_value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = env_value
        connect._connections.clear()


def first_start_after(group: SentinelGroup, port: int, moment: float) -> float | None:
    """When the first job started on the server at `port` after `moment`
    (from the "started" events workers write there), if one has."""
    from jobs import events

    since = f"{int(moment * 1000)}-0"  # stream ids are the server's clock, in ms
    entries: Any = group.server_on(port).client().xrange(events.STREAM, min=since)
    starts = [
        float(raw.get(b"at", b"0"))
        for _, raw in entries
        if raw.get(b"kind") == b"started"
    ]
    after = [at for at in starts if at > moment]
    return min(after) if after else None


def sentinel_failover(directory: Path, sizes: Sizes, cut: float = 0.0) -> Outcome:
    """`cut` > 0: replication is cut that many seconds before the kill."""
    from bench.chaos import marks  # registers chaos.mark
    from bench.procs import Fleet

    jobs = sizes.failover_jobs
    outcome = Outcome(
        f"Redis primary SIGKILLed under load ({jobs} jobs), replica promoted by"
        " 3 Sentinels" + (f", replication cut {cut} s before the kill" if cut else "")
    )
    group = SentinelGroup(
        directory=directory / ("sentinel-cut" if cut else "sentinel"),
        down_after_ms=DOWN_AFTER_MS,
        failover_timeout_ms=FAILOVER_TIMEOUT_MS,
    ).start()
    try:
        path = group.directory / "marks.txt"
        with pointed_at(group), marks.marking(path), Fleet(directory) as fleet:
            with submitting(
                limit=jobs, pause=0.01, task="chaos.mark", payload={}
            ) as load:
                start_processes(fleet)
                load.wait_accepted(jobs // 2, timeout=600)
                figures = _kill_and_follow(group, cut)
                submitted = load.finished(900)
            ids = list(load.accepted)
            done = wait_until(lambda: count_succeeded(ids) == len(ids), 600)
            processes_check(outcome, fleet)
            again = enqueued_again(ids)
            outcome.figures.update(
                {
                    "accepted": len(ids),
                    "refused": len(load.refused),
                    **figures,
                    "jobs enqueued again from the database": again,
                    "accepted but never succeeded": len(ids) - count_succeeded(ids),
                }
            )
            outcome.figures["started twice (workers' own logs)"] = started_twice(
                directory, ids
            )
            ran = marks.marks(path)
            twice = sum(1 for i in ids if ran[i] > 1)
            outcome.figures["side effect twice (the jobs' own marks)"] = twice
            if not cut:
                # With replication whole, nothing the primary did is undone.
                outcome.check("no job's side effect happened twice", twice == 0)
            if cut:
                outcome.check(
                    "the new primary lacked jobs and the database put them back",
                    figures["jobs the new primary lacked at promotion"] > 0
                    and again > 0,
                )
            outcome.check(f"all {jobs} submissions accepted", submitted)
            outcome.check("accepted submissions lost 0", done)
            outcome.check(
                "a job ran on the new primary within 15 s of the kill",
                figures["kill to first job running on the new primary (s)"] < 15,
            )
            history_checks(outcome, ids)
    finally:
        group.stop()
    return outcome


def _kill_and_follow(group: SentinelGroup, cut: float) -> dict[str, float | int]:
    """(Cut replication,) SIGKILL the primary, wait for the promotion and
    for a job to run on the new primary; the figures of that."""
    if cut:
        group.block_replication()
        time.sleep(cut)
    before = group.primary().keys("rq:job:*")
    killed_at = time.time()
    old = group.kill_primary()
    new = group.wait_for_failover(old)
    promoted = time.time() - killed_at
    lacked = before - group.server_on(new).keys("rq:job:*")
    wait_until(lambda: first_start_after(group, new, killed_at) is not None, 120)
    started = first_start_after(group, new, killed_at) or float("inf")
    return {
        "down-after-milliseconds": DOWN_AFTER_MS,
        "failover-timeout (ms)": FAILOVER_TIMEOUT_MS,
        "jobs the new primary lacked at promotion": len(lacked),
        "kill to replica promoted (s)": round(promoted, 2),
        "kill to first job running on the new primary (s)": round(
            started - killed_at, 2
        ),
    }


def enqueued_again(ids: list[str]) -> int:
    """Jobs that reconcile or the monitor's sweep put back (their event)."""
    from jobs.models import JobEvent

    return JobEvent.objects.filter(
        job_id__in=ids, kind=JobEvent.Kind.RECONCILED
    ).count()


def started_twice(directory: Path, ids: list[str]) -> int:
    """Jobs started more than once, from the workers' own log lines. The
    history cannot tell: a job that finished on the old primary in the cut
    window, its events lost with it, is enqueued again and runs again (at
    least once, see README "Redis Sentinel"). An upper bound: the line is
    written as the start is sent, so a job its worker took as the primary
    died, which never ran there, counts too; the marks count runs."""
    wanted = set(ids)
    runs: Counter[str] = Counter()
    for log in directory.glob("w*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"job started"' not in line:
                continue
            try:
                job_id = json.loads(line).get("job_id")
            except ValueError:
                continue
            if job_id in wanted:
                runs[job_id] += 1
    return sum(1 for count in runs.values() if count > 1)
