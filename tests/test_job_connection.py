"""Fork-model job processes reuse a Redis connection the worker opened before
the fork (issue 19: "no new Redis connection per job"), real workers, real
Redis: the server's count of accepted connections grows by far fewer than the
number of jobs, and every job still succeeds exactly once."""

from __future__ import annotations

import os
import select
import signal
from typing import Any

import pytest

from jobs import services
from jobs.backend import connect, jobconn
from jobs.models import Attempt, JobRecord
from tests.conftest import spawned_log_says, wait_for, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status
JOBS = 30
#: demo.progress also writes through connect.connection() in the job process.
PAYLOADS: dict[str, Any] = {
    "demo.echo": {"text": "hi"},
    "demo.progress": {"steps": 2, "delay": 0},
}


def accepted() -> int:
    """Connections the server has accepted since it started."""
    return int(connect.connection().info("stats")["total_connections_received"])


def idle_worker(spawn: Any, *args: str, **env: str) -> Any:
    proc = spawn("rqworker", "default", *args, **env)
    client = connect.connection()

    def idle() -> bool:
        for key in client.smembers("rq:workers"):
            data = client.hgetall(key)
            if data.get(b"pid") == str(proc.pid).encode():
                return data.get(b"state") == b"idle"
        return False

    wait_for(idle, timeout=60)
    return proc


def ran_once_each(jobs: list[JobRecord], tmp_path: Any) -> None:
    """One attempt each, and no job process died under the worker (a process
    handed a connection unfit for it fails at its first command; its job is
    then recovered and run again, which a count of successes would hide)."""
    found = JobRecord.objects.filter(pk__in=[j.pk for j in jobs])
    assert {j.attempts for j in found} == {1}
    assert not spawned_log_says(tmp_path, "rqworker-0", "terminated unexpectedly")


def run_echoes(count: int, task: str = "demo.echo") -> list[JobRecord]:
    payload = PAYLOADS[task]
    jobs = [services.job_submit(task=task, payload=payload) for _ in range(count)]

    def done() -> bool:
        found = JobRecord.objects.filter(pk__in=[j.pk for j in jobs])
        return {j.status for j in found} == {Status.SUCCEEDED}

    wait_for(done, timeout=180)
    return jobs


@pytest.mark.parametrize(
    ("args", "task"),
    [
        ((), "demo.echo"),
        ((), "demo.progress"),
        (("--concurrency", "3", "--execution", "fork"), "demo.echo"),
        (("--concurrency", "3", "--execution", "fork"), "demo.progress"),
    ],
    ids=[
        "one-job-worker",
        "one-job-worker-progress",
        "fork-slots",
        "fork-slots-progress",
    ],
)
def test_forked_jobs_reuse_the_workers_spare_connection(
    spawn, monitor, tmp_path, args, task
):
    proc = idle_worker(spawn, *args)
    before = accepted()
    jobs = run_echoes(JOBS, task)
    opened = accepted() - before
    attempts = list(Attempt.objects.filter(job__in=jobs))
    assert len(attempts) == JOBS  # exactly once each
    assert {a.outcome for a in attempts} == {"succeeded"}
    assert {worker_pid(a.worker_name) for a in attempts} == {proc.pid}
    pids = {a.pid for a in attempts}
    assert proc.pid not in pids and len(pids) == JOBS  # a fresh process each
    ran_once_each(jobs, tmp_path)
    # A job process used to connect (and AUTH) once per job, at least.
    print(f"{opened} new connections for {JOBS} {task} jobs")
    assert opened <= 6, f"{opened} connections for {JOBS} jobs"


def test_a_killed_job_process_connection_is_not_reused(spawn, monitor, tmp_path):
    """The spare of a job process that was killed may be mid-reply: the
    worker closes it, opens another, and the jobs after it still succeed."""
    proc = idle_worker(spawn)
    victim = services.job_submit(
        task="demo.sleep", payload={"seconds": 30}, retry={"max_attempts": 1}
    )

    def job_pid() -> int:
        attempt = Attempt.objects.filter(job=victim).first()
        return int(attempt.pid or 0) if attempt else 0

    pid = wait_for(job_pid, timeout=60)
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: JobRecord.objects.get(pk=victim.pk).status == Status.DEAD,
        timeout=60,
    )
    before = accepted()
    jobs = run_echoes(10)
    attempts = list(Attempt.objects.filter(job__in=jobs))
    assert len(attempts) == 10 and {a.outcome for a in attempts} == {"succeeded"}
    assert {worker_pid(a.worker_name) for a in attempts} == {proc.pid}
    assert {
        j.attempts for j in JobRecord.objects.filter(pk__in=[j.pk for j in jobs])
    } == {1}
    # A fresh spare for the killed one's, then reused: not one per job.
    assert 1 <= accepted() - before <= 4


def test_a_connection_a_job_left_subscribed_is_not_reused(spawn, monitor, tmp_path):
    """A job ends with its connection in subscribe mode (it would refuse the
    next job's commands): the job process does not vouch for it, the worker
    shuts it down and lends the next job a new one."""
    from tests import jobconn_tasks

    assert callable(jobconn_tasks.leave_subscribed)  # registered here too
    proc = idle_worker(spawn, JOB_TASK_MODULES=jobconn_tasks.MODULES)
    before = accepted()
    subscriber = services.job_submit(
        task="tests.leave_subscribed", payload={}, retry={"max_attempts": 1}
    )
    jobs = run_echoes(10)
    assert JobRecord.objects.get(pk=subscriber.pk).status == Status.SUCCEEDED
    attempts = list(Attempt.objects.filter(job__in=[subscriber, *jobs]))
    assert len(attempts) == 11 and {a.outcome for a in attempts} == {"succeeded"}
    assert {worker_pid(a.worker_name) for a in attempts} == {proc.pid}
    ran_once_each([subscriber, *jobs], tmp_path)
    # The subscriber's outcome went out on a new connection; the worker's
    # next spare is new too; the echoes after it reused that one.
    assert 2 <= accepted() - before <= 4


def _job_process(
    client: Any, spare: Any, *, vouch: bool, code: int = 0, **how: Any
) -> int:
    """Fork a process that adopts `spare`, writes through `client`, maybe
    vouches, and exits with `code`; its wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked process
        try:
            jobconn.adopt(client, spare)
            client.set("jobconn-check", str(os.getpid()))
            if how.get("unread"):  # a request whose reply nobody reads
                spare.conn.send_command("PING")
                select.select([spare.conn._sock], [], [], 10)  # it has come
            if vouch:
                jobconn.vouch(client)
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def test_a_spare_is_lent_again_only_after_a_clean_vouched_exit(redis_server):
    """jobconn.Spares, with real forks and a real server: reused after a
    process exited 0 having vouched for it with nothing left to read; shut
    down after anything else, and the next one is new."""
    client = connect.worker_connection(connect.connection())
    spares = jobconn.Spares(client)
    spare = spares.take()
    assert spare is not None
    before = accepted()
    spares.give_back(spare, _job_process(client, spare, vouch=True))
    assert spares.take() is spare
    spares.give_back(spare, _job_process(client, spare, vouch=True))
    assert spares.take() is spare
    assert accepted() == before  # two job processes, no new connection
    assert connect.connection().get("jobconn-check") is not None

    for unfit in (
        {"vouch": False},  # ended without vouching (os._exit in the job)
        {"vouch": True, "code": 1},  # RQ's exit after an error
        {"vouch": True, "unread": True},  # a reply is waiting on the socket
    ):
        status = _job_process(client, spare, **unfit)
        spares.give_back(spare, status)
        assert spare.conn._sock is None  # shut down, never lent again
        spare = spares.take()
        assert spare is not None and spare.conn._sock is not None
    assert accepted() == before + 3
    # Not known to have ended (a worker that gave up on its process): closed
    # here, not shut down, not lent again.
    spares.give_back(spare, None)
    assert spares.take() is not spare
