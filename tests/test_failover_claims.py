"""After a failover a job must not be put back twice (issue 20): what the
promoted replica may hold of a job a worker took as the primary died (its
execution's entry, but "queued" in no queue) must not make the stranded
sweep and the lost-worker recovery both enqueue it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobs import services
from jobs.backend import connect, queueing
from jobs.backend.recovery import recover_abandoned
from jobs.models import Attempt, JobRecord
from jobs.services.reconcile import stranded_sweep
from tests.conftest import spawned_log_says, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status


def test_recovery_leaves_alone_a_job_that_finished_since_its_entry_lapsed(
    workers: Callable[..., Any], recorder: Any
) -> None:
    """The entry of a worker that took the job as the primary died lapses
    after the stranded sweep put the job back and another worker ran it:
    recovering it would run the job a second time."""
    workers(1)
    job = services.job_submit(task="demo.echo", payload={"text": "once"})
    wait_for(lambda: queueing.statuses([job.pk])[job.pk] == "finished")
    client = connect.connection()
    # As the first worker's registration, replicated before the kill, lapses.
    client.zadd("rq:wip:default", {f"{job.pk}:lost-execution": 1})

    assert recover_abandoned(["default"]) == []

    assert client.zcard("rq:wip:default") == 0
    assert client.lrange("rq:queue:default", 0, -1) == []
    assert queueing.statuses([job.pk])[job.pk] == "finished"
    recorder.drain_all()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert Attempt.objects.filter(job=job).count() == 1


def test_recovery_takes_back_a_job_whose_only_execution_lapsed(
    workers: Callable[..., Any],
) -> None:
    """The rule above leaves the ordinary case as it was: a job a dead worker
    took ("queued", in no queue, its execution lapsed) runs again."""
    job = services.job_submit(task="demo.echo", payload={"text": "lost"})
    client = connect.connection()
    client.lrem("rq:queue:default", 1, job.pk)  # popped by a worker that died
    client.zadd("rq:wip:default", {f"{job.pk}:dead-worker": 1})

    assert [r.job_id for r in recover_abandoned(["default"])] == [job.pk]

    workers(1)
    wait_for(lambda: queueing.statuses([job.pk])[job.pk] == "finished")


def test_sweep_never_requeues_a_job_a_worker_is_running(
    workers: Callable[..., Any], recorder: Any
) -> None:
    """The promoted replica missed the job process's "started" (replication
    cut): Redis says "queued" and the job is in no queue, but its worker's
    heartbeat keeps its execution alive. Putting it back would run it twice."""
    workers(1)
    job = services.job_submit(task="demo.sleep", payload={"seconds": 8})
    # Its job process has written "started" (else that write, coming after
    # the one below, would undo it).
    wait_for(lambda: queueing.statuses([job.pk])[job.pk] == "started")
    assert queueing.executing([job.pk])
    client = connect.connection()
    client.hset(f"rq:job:{job.pk}", "status", "queued")
    recorder.drain_all()

    first, suspects = stranded_sweep(set())
    second, _ = stranded_sweep(suspects)

    assert job.pk in suspects  # seen in limbo, and yet
    assert first == second == []
    assert client.lrange("rq:queue:default", 0, -1) == []


def test_a_job_that_ends_while_redis_is_away_writes_its_outcome_once_back(
    workers: Callable[..., Any],
    redis_server: Any,
    recorder: Any,
    tmp_path: Path,
) -> None:
    """The primary dies (or restarts) as a job ends: its job process waits
    for Redis to write the outcome, rather than leave the job "started" for
    the lost-worker recovery to run again."""
    workers(1)
    # Long enough that Redis is surely down before it ends, on a loaded
    # machine too (a 1 s job could end before the test saw it run). Running:
    # its job process has written "started" (Redis gone before that write is
    # a job that never ran; the lease ends it and it runs again).
    job = services.job_submit(task="demo.sleep", payload={"seconds": 4})
    wait_for(lambda: queueing.statuses([job.pk])[job.pk] == "started")
    redis_server.stop()
    try:
        wait_for(
            lambda: spawned_log_says(
                tmp_path, "rqworker-0", "redis unavailable as a job ends"
            )
        )
    finally:
        redis_server.start()

    wait_for(lambda: queueing.statuses([job.pk])[job.pk] == "finished")
    assert queueing.fetch(job.pk).meta["attempt"] == 1
    recorder.drain_all()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert list(Attempt.objects.filter(job=job).values_list("outcome", flat=True)) == [
        Attempt.Outcome.SUCCEEDED
    ]
