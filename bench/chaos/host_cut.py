"""A worker host cut off the network while it runs a job, then restored
(issue 20): workers run on separate network hosts (namespaces, see netns),
Redis, the database and the monitor on the server side. Nothing accepted is
lost, the cut host's job is recovered on another host, and no job runs
twice, counted by its own side effect (bench.chaos.marks)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from bench.chaos.load import submit_many, submitting
from bench.chaos.netns import SERVER, SUBNET, Hosts, NetnsUnavailable, why_unavailable
from bench.chaos.outcome import (
    Outcome,
    count_succeeded,
    history_checks,
    processes_check,
    wait_until,
)
from bench.chaos.postgres import PrivatePostgres
from bench.chaos.sizes import Sizes
from console.localredis import LocalRedis
from jobs.backend import connect

#: The job the cut host runs when its link goes: longer than a worker's lease
#: on its job (JOB_MONITORING_INTERVAL + HEARTBEAT_GRACE), so that it is still
#: running when the server side gives up on its host.
LONG_JOB = 25.0
SHORT_JOB = 0.05
#: Longest the link stays cut waiting for the job to start on another host.
CUT_AT_MOST = 90.0


def host_cut(
    directory: Path, server: LocalRedis, postgres: PrivatePostgres, sizes: Sizes
) -> Outcome:
    count, jobs = sizes.hosts, sizes.host_jobs
    outcome = Outcome(
        f"A worker host's link cut while {count} hosts (network namespaces)"
        f" run {jobs} jobs, then restored"
    )
    reason = why_unavailable()
    if reason:
        outcome.skip(reason)
        return outcome
    hosts = Hosts(count)
    try:
        try:
            hosts.create()
        except NetnsUnavailable as exc:
            outcome.skip(str(exc))
            return outcome
        with serving_the_subnet(server, postgres):
            _run(directory, server, postgres, hosts, jobs, outcome)
    finally:
        hosts.remove()
    return outcome


@contextlib.contextmanager
def serving_the_subnet(server: LocalRedis, postgres: PrivatePostgres) -> Iterator[None]:
    """Redis and PostgreSQL also listen on the server's veth address (the
    bridge), then on loopback only again."""
    from django.db import connections

    client = connect.connection()
    client.config_set("bind", f"127.0.0.1 {SERVER}")
    connections.close_all()
    postgres.stop()
    postgres.listen = f"127.0.0.1,{SERVER}"
    postgres.allow(SUBNET)
    postgres.start()
    try:
        yield
    finally:
        connections.close_all()
        postgres.stop()
        postgres.listen = "127.0.0.1"
        postgres.start()
        client.config_set("bind", "127.0.0.1")


def _on_subnet(url: str) -> str:
    return url.replace("@127.0.0.1:", f"@{SERVER}:")


def _run(
    directory: Path,
    server: LocalRedis,
    postgres: PrivatePostgres,
    hosts: Hosts,
    jobs: int,
    outcome: Outcome,
) -> None:
    from bench.chaos import marks  # registers chaos.mark
    from bench.procs import Fleet, console_worker, monitor
    from jobs import services

    path = directory / "host-cut-marks.txt"
    modules = f"jobs.tasks.demo,{marks.MODULE}"
    common = {"JOB_TASK_MODULES": modules, marks.MARKS: str(path)}
    reached = [hosts.reaches_server(n, server.port) for n in range(1, hosts.count + 1)]
    outcome.check("every host reaches Redis on the subnet", all(reached))
    with Fleet(directory) as fleet:
        fleet.start("monitor", monitor(), env=common)
        worker_env = {
            **common,
            "REDIS_URL": _on_subnet(server.url),
            "DATABASE_URL": _on_subnet(postgres.url),
        }
        for n in range(1, hosts.count + 1):
            fleet.start(f"h{n}", _as_host(hosts, n, console_worker()), env=worker_env)
        with submitting(
            limit=jobs,
            pause=0.05,
            task="chaos.mark",
            payload={"seconds": SHORT_JOB},
        ) as load:
            load.wait_accepted(jobs // 4, timeout=300)
            long = services.job_submit(task="chaos.mark", payload={"seconds": LONG_JOB})
            victim = _running_on(hosts, long.pk, timeout=120)
            figures = _cut_and_recover(hosts, victim, long.pk) if victim else {}
            submitted = load.finished(600)
        # Work for every host after the restore, the cut one's included.
        after = submit_many("chaos.mark", {"seconds": 0.2}, 10 * hosts.count, outcome)
        ids = [*load.accepted, long.pk, *after]
        done = wait_until(lambda: count_succeeded(ids) == len(ids), 300)
        # A run the cut host went on with would end after the one that
        # counted: every worker idle before anything is counted.
        quiet = wait_until(_all_idle, LONG_JOB + 60)
        processes_check(outcome, fleet)
        again = _worked_after(hosts.namespace(victim), figures) if victim else False
    ran = marks.marks(path)
    outcome.figures.update(
        {
            "hosts": hosts.count,
            "accepted": len(ids),
            "refused": len(load.refused),
            **figures,
            "accepted but never succeeded": len(ids) - count_succeeded(ids),
            "side effects (marks)": sum(ran.values()),
            "jobs whose side effect happened twice": sum(
                1 for n in ran.values() if n > 1
            ),
        }
    )
    outcome.check("a host was running the long job", victim is not None)
    outcome.check("every worker idle at the end", quiet)
    outcome.check(f"all {jobs} submissions accepted", submitted)
    outcome.check("accepted submissions lost 0", done)
    outcome.check(
        "the cut host's job ran to its end on another host",
        bool(figures.get("recovered on")) and ran[long.pk] == 1,
    )
    outcome.check(
        "every job's side effect happened exactly once",
        all(ran[i] == 1 for i in ids) and len(ran) == len(ids),
    )
    outcome.check("the cut host's worker took jobs again once restored", again)
    history_checks(outcome, ids)


def _all_idle() -> bool:
    from jobs.backend import live

    return all(w.state == "idle" for w in live.live_workers())


def _as_host(hosts: Hosts, n: int, argv: list[str]) -> list[str]:
    """`argv` in host n's namespace, with the host's own name (a UTS
    namespace), which workers put in their names and the history shows."""
    rename = 'hostname "$0" && exec "$@"'
    return hosts.run_in(
        n, ["unshare", "--uts", "sh", "-c", rename, hosts.namespace(n), *argv]
    )


def _running_on(hosts: Hosts, job_id: str, timeout: float) -> int | None:
    """The host whose worker runs `job_id`, once one does."""
    from jobs.models import Attempt

    def host() -> int | None:
        attempt = Attempt.objects.filter(job_id=job_id).first()
        if attempt is None:
            return None
        for n in range(1, hosts.count + 1):
            if attempt.hostname == hosts.namespace(n):
                return n
        return None

    wait_until(lambda: host() is not None, timeout)
    return host()


def _cut_and_recover(hosts: Hosts, victim: int, job_id: str) -> dict[str, object]:
    """Cut the victim's link until its job started on another host (the
    server side noticed the lost heartbeat), then restore it."""
    from jobs.models import Attempt

    def elsewhere() -> Attempt | None:
        return (
            Attempt.objects.filter(job_id=job_id, started_at__isnull=False)
            .exclude(hostname=hosts.namespace(victim))
            .first()
        )

    time.sleep(1.0)  # the job well under way on the victim
    cut_at = time.time()
    hosts.cut(victim)
    recovered = wait_until(lambda: elsewhere() is not None, CUT_AT_MOST)
    hosts.restore(victim)
    restored_at = time.time()
    attempt = elsewhere()
    started = attempt.started_at.timestamp() if attempt and attempt.started_at else 0
    return {
        "cut host": hosts.namespace(victim),
        "link cut for (s)": round(restored_at - cut_at, 1),
        "cut to the job running on another host (s)": (
            round(started - cut_at, 1) if recovered else None
        ),
        "recovered on": attempt.hostname if attempt else None,
        "restored at": restored_at,
    }


def _worked_after(namespace: str, figures: dict[str, object]) -> bool:
    """Did the cut host's worker start a job after its link came back?"""
    from datetime import UTC, datetime

    from jobs.models import Attempt

    restored = figures.pop("restored at", None)
    if not isinstance(restored, float):
        return False
    since = datetime.fromtimestamp(restored, UTC)
    return Attempt.objects.filter(hostname=namespace, started_at__gt=since).exists()
