"""Real worker processes: pause, crash recovery, shutdown, outages, scaling."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.backend import connect, queueing, queues
from jobs.models import Attempt, JobRecord
from jobs.services.reconcile import ABANDONED, find_differences, stranded_sweep
from tests.conftest import spawned_log_says, wait_for, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status
#: A second queue the workers serve, for readiness probes.
OTHER = "mail"


def status_of(job: JobRecord) -> str:
    return JobRecord.objects.get(pk=job.pk).status


def succeeded_attempts(job: JobRecord) -> int:
    return Attempt.objects.filter(job=job, outcome=Attempt.Outcome.SUCCEEDED).count()


def probe_every_worker(procs: list[Any]) -> None:
    """Readiness, before asserting that a paused queue's jobs did not run:
    every worker runs a low-priority job of another queue. Workers take every
    normal lane before any low lane, so a worker that ran it has dequeued
    since the paused queue's (normal) jobs were waiting, and passed them by."""
    pids, seen = {p.pid for p in procs}, set()

    def every_worker_probed() -> bool:
        probe = services.job_submit(
            task="demo.echo", payload={"text": "probe"}, queue=OTHER, priority="low"
        )
        wait_for(lambda: status_of(probe) == Status.SUCCEEDED)
        seen.add(worker_pid(JobRecord.objects.get(pk=probe.pk).worker_name))
        return seen >= pids

    wait_for(every_worker_probed, timeout=60, interval=0)


def test_paused_queue_starts_nothing_and_resume_drains_it(workers, monitor):
    procs = workers(3, queues=("default", OTHER))
    running = [
        services.job_submit(task="demo.sleep", payload={"seconds": 2}) for _ in range(3)
    ]
    wait_for(lambda: all(status_of(j) == Status.STARTED for j in running))
    services.queue_pause(name="default", actor=None, reason="test")
    paused_at = timezone.now()
    waiting = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(5)
    ]
    wait_for(lambda: all(status_of(j) == Status.SUCCEEDED for j in running))
    probe_every_worker(procs)
    assert not Attempt.objects.filter(job__in=waiting).exists()
    assert all(status_of(j) == Status.QUEUED for j in waiting)
    services.queue_resume(name="default", actor=None)
    wait_for(lambda: all(status_of(j) == Status.SUCCEEDED for j in waiting))
    first_start = min(
        Attempt.objects.filter(job__in=waiting).values_list("started_at", flat=True)
    )
    assert first_start > paused_at
    assert all(p.poll() is None for p in procs)


def test_sigkilled_worker_job_runs_again_on_a_healthy_worker(workers, monitor):
    procs = workers(2)
    job = services.job_submit(task="demo.sleep", payload={"seconds": 5})
    wait_for(lambda: status_of(job) == Status.STARTED)
    victim = worker_pid(JobRecord.objects.get(pk=job.pk).worker_name)
    assert victim in [p.pid for p in procs]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60)
    attempts = list(Attempt.objects.filter(job=job).order_by("number"))
    assert [a.outcome for a in attempts] == ["lost", "succeeded"]
    assert worker_pid(attempts[0].worker_name) == victim
    assert worker_pid(attempts[1].worker_name) != victim
    assert "worker lost" in attempts[0].exc_message
    assert succeeded_attempts(job) == 1
    assert find_differences() == []


def test_job_that_kills_its_process_every_time_ends_dead(workers, monitor):
    procs = workers(1)
    job = services.job_submit(task="demo.crash", payload={})
    wait_for(lambda: status_of(job) == Status.DEAD, timeout=60)
    record = JobRecord.objects.get(pk=job.pk)
    assert record.attempts == 3
    assert "worker lost" in record.last_error
    assert set(Attempt.objects.filter(job=job).values_list("outcome", flat=True)) == {
        "lost"
    }
    assert procs[0].poll() is None  # the worker itself survived every crash
    after = services.job_submit(task="demo.echo", payload={"text": "still works"})
    wait_for(lambda: status_of(after) == Status.SUCCEEDED)


def test_sigterm_lets_the_running_job_finish_then_exits_zero(workers, monitor):
    (proc,) = workers(1)
    job = services.job_submit(task="demo.sleep", payload={"seconds": 3})
    wait_for(lambda: status_of(job) == Status.STARTED)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    wait_for(lambda: status_of(job) == Status.SUCCEEDED)
    assert succeeded_attempts(job) == 1


def test_a_worker_started_while_redis_is_down_works_once_it_is_back(
    workers, monitor, redis_server, tmp_path
):
    redis_server.stop()
    try:
        (proc,) = workers(1)
        wait_for(lambda: spawned_log_says(tmp_path, "rqworker-0", "waiting for redis"))
    finally:
        redis_server.start()
    job = services.job_submit(task="demo.echo", payload={"text": "back"})
    wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60)
    assert proc.poll() is None


def test_workers_carry_on_after_a_redis_restart(workers, monitor, redis_server):
    procs = workers(2)
    running = services.job_submit(task="demo.sleep", payload={"seconds": 2})
    wait_for(lambda: status_of(running) == Status.STARTED)
    redis_server.restart()
    after = services.job_submit(task="demo.echo", payload={"text": "after"})
    # How long the workers take to carry on is measured by `make chaos`.
    wait_for(lambda: status_of(after) == Status.SUCCEEDED, timeout=30)
    wait_for(lambda: status_of(running) == Status.SUCCEEDED, timeout=60)
    assert all(p.poll() is None for p in procs)
    assert succeeded_attempts(running) == 1


def test_three_workers_share_300_jobs_with_a_kill_and_a_replacement(workers, monitor):
    procs = workers(3)
    jobs = services.job_submit_many(
        requests=[
            services.SubmitRequest(task="demo.sleep", payload={"seconds": 0.05})
            for _ in range(300)
        ]
    )
    wait_for(lambda: JobRecord.objects.filter(status=Status.SUCCEEDED).count() >= 60)
    procs[0].kill()
    workers(1)
    wait_for(
        lambda: JobRecord.objects.filter(status=Status.SUCCEEDED).count() == 300,
        timeout=120,
    )
    per_job = {j.pk: 0 for j in jobs}
    for job_id in Attempt.objects.filter(outcome="succeeded").values_list(
        "job_id", flat=True
    ):
        per_job[job_id] += 1
    assert set(per_job.values()) == {1}
    names = set(Attempt.objects.values_list("worker_name", flat=True))
    assert {worker_pid(n) for n in names} >= {p.pid for p in procs}


def test_memory_limit_kills_only_that_job(workers, monitor):
    workers(1)
    hog = services.job_submit(task="demo.hog", payload={"megabytes": 512})
    small = services.job_submit(task="demo.hog", payload={"megabytes": 8})
    wait_for(
        lambda: status_of(hog) == Status.DEAD and status_of(small) == Status.SUCCEEDED,
        timeout=60,
    )
    assert JobRecord.objects.get(pk=hog.pk).error_type == "MemoryError"


def test_worker_reports_its_health(workers):
    (proc,) = workers(1)
    client = connect.connection()

    def registered() -> dict[bytes, bytes] | None:
        for key in client.smembers("rq:workers"):
            data = client.hgetall(key)
            if data.get(b"pid") == str(proc.pid).encode() and b"rss_kb" in data:
                return data  # registered, and heartbeated at least once
        return None

    data = wait_for(registered)
    assert int(data[b"rss_kb"]) > 1000
    assert data[b"hostname"] and data[b"queues"]
    assert b"default:high" in data[b"queues"]


def test_rqworker_pool_runs_jobs_with_this_projects_worker(spawn, monitor):
    spawn("rqworker-pool", "default", "--num-workers", "2")
    jobs = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(10)
    ]
    wait_for(lambda: all(status_of(j) == Status.SUCCEEDED for j in jobs), timeout=60)
    assert Attempt.objects.filter(outcome="succeeded").count() == 10


def test_job_processes_get_their_own_database_connection(run_until):
    """A task using the ORM in a forked job process neither reuses nor breaks
    the worker's (here: the test's) connection."""
    from django.db import connection

    job = services.job_submit(task="demo.count_jobs", payload={})
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    run_until(lambda: status_of(job) == Status.SUCCEEDED)
    assert JobRecord.objects.get(pk=job.pk).result == {"jobs": 1}
    with connection.cursor() as cursor:  # ours still works after the fork
        cursor.execute("SELECT COUNT(*) FROM jobs_jobrecord")
        assert cursor.fetchone()[0] == 1


def test_second_sigterm_stops_at_once_and_the_job_is_recovered(workers, monitor):
    first, second = workers(2)
    job = services.job_submit(task="demo.sleep", payload={"seconds": 30})
    wait_for(lambda: status_of(job) == Status.STARTED)
    victim = next(
        p
        for p in (first, second)
        if p.pid == worker_pid(JobRecord.objects.get(pk=job.pk).worker_name)
    )
    victim.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # RQ ignores a second signal within one second of the first
    victim.send_signal(signal.SIGTERM)
    victim.wait(timeout=30)
    wait_for(
        lambda: Attempt.objects.filter(job=job, outcome="lost").exists(), timeout=60
    )
    wait_for(lambda: status_of(job) == Status.STARTED, timeout=30)
    assert worker_pid(JobRecord.objects.get(pk=job.pk).worker_name) != victim.pid


def test_pause_survives_redis_losing_its_data(workers, monitor):
    services.queue_pause(name="default", actor=None, reason="maintenance")
    connect.connection().flushall()  # as if Redis came back empty
    wait_for(lambda: queues.paused_queues() == {"default"}, timeout=10)
    procs = workers(1, queues=("default", OTHER))
    job = services.job_submit(task="demo.echo", payload={"text": "held"})
    probe_every_worker(procs)
    assert status_of(job) == Status.QUEUED


# -- RQ's own clean-up of a dead worker's job --------------------------------


def heartbeats_run_out() -> None:
    """As if the dead worker's job heartbeats had expired (15 s later)."""
    client = connect.connection()
    key = queueing.rq_queue("default").started_job_registry.key
    for entry in client.zrange(key, 0, -1):
        client.zadd(key, {entry: time.time() - 1})


def recorded_status(recorder, job: JobRecord) -> str:
    recorder.drain_all()
    return status_of(job)


def killed_while_running(spawn, recorder) -> JobRecord:
    """A job whose worker was SIGKILLed mid-run (no scheduler child: it would
    outlive a SIGKILLed worker in this test's process group)."""
    first = spawn("rqworker", "default")
    job = services.job_submit(task="demo.sleep", payload={"seconds": 5})
    wait_for(lambda: recorded_status(recorder, job) == Status.STARTED)
    first.kill()
    first.wait()
    heartbeats_run_out()
    return job


def outcomes(job: JobRecord) -> list[str]:
    rows = Attempt.objects.filter(job=job).order_by("number")
    return list(rows.values_list("outcome", flat=True))


def test_a_new_worker_recovers_a_dead_workers_job_rather_than_failing_it(
    spawn, recorder
):
    """Every worker runs RQ's registry clean-up when it starts, which fails a
    dead worker's job as abandoned: no retry, no history (the kill storm of
    `make chaos` left 18 of 2,000 jobs so). Our recovery must come first; no
    monitor runs here."""
    job = killed_while_running(spawn, recorder)
    spawn("rqworker", "default")
    wait_for(lambda: recorded_status(recorder, job) == Status.SUCCEEDED, timeout=60)
    assert outcomes(job) == ["lost", "succeeded"]
    assert find_differences() == []


def test_a_job_rq_failed_as_abandoned_is_recovered_by_the_sweep(spawn, recorder):
    """RQ's clean-up also runs from outside our workers (`rq info`, django-rq's
    statistics): the monitor's sweep adopts what it failed."""
    job = killed_while_running(spawn, recorder)
    queueing.rq_queue("default").started_job_registry.cleanup()  # as `rq info` does
    assert queueing.statuses([job.pk]) == {job.pk: "failed"}
    assert [(d.redis, d.repair) for d in find_differences()] == [(ABANDONED, "recover")]
    repairs, suspects = stranded_sweep(set())
    assert repairs == [] and suspects == {job.pk}  # one sighting is not enough
    repairs, _ = stranded_sweep(suspects)
    assert [d.job_id for d in repairs] == [job.pk]
    spawn("rqworker", "default")
    wait_for(lambda: recorded_status(recorder, job) == Status.SUCCEEDED, timeout=60)
    assert outcomes(job) == ["lost", "succeeded"]
    assert stranded_sweep(suspects) == ([], set())
    assert find_differences() == []


def test_worker_survives_redis_dying_as_its_job_ends(spawn, monitor, redis_server):
    """Redis SIGKILLed while a job runs: the job ends with Redis still down,
    and RQ's bookkeeping after it raises. The worker must live on, and the
    job (left in the started registry) run again once and only once."""
    worker = spawn("rqworker", "default")
    job = services.job_submit(task="demo.sleep", payload={"seconds": 2})
    wait_for(lambda: status_of(job) == Status.STARTED)
    redis_server.stop(kill=True)
    time.sleep(4)  # the job ends meanwhile: its bookkeeping meets no server
    redis_server.start()
    after = services.job_submit(task="demo.echo", payload={"text": "after"})
    wait_for(lambda: status_of(after) == Status.SUCCEEDED, timeout=30)
    assert worker.poll() is None
    wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60)
    assert succeeded_attempts(job) == 1
    assert find_differences() == []


def scheduler_pid(queue: str = "default") -> int | None:
    """The pid of the scheduler process holding the queue's lock (from its
    own registration), once it has registered."""
    client = connect.connection()
    owner = client.get(f"rq:scheduler-lock:{queue}")
    if not owner:
        return None
    pid = client.hget(f"rq:scheduler:{owner.decode()}", "pid")
    return int(pid) if pid and int(pid) else None


def test_a_killed_scheduler_process_is_started_again_at_once(workers, monitor):
    """RQ restarts a dead scheduler only with its maintenance, every 10
    minutes; retries and delayed jobs would wait that long."""
    (worker,) = workers(1)
    first = wait_for(scheduler_pid, timeout=60)
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (scheduler_pid() or first) != first and scheduler_pid())
    assert worker.poll() is None
    job = services.job_submit(task="demo.echo", payload={"text": "later"}, delay=1)
    wait_for(lambda: status_of(job) == Status.SUCCEEDED, timeout=60)
    assert second != first
