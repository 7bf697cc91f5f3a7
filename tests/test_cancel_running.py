"""An operator's Cancel stops a running job (issue 19), in every model: the
classic forking worker, thread slots, process slots; and a job whose worker
is gone. Real worker processes, no timing assertions."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from jobs import services
from jobs.backend import cancels, connect, queueing
from jobs.backend.outcomes import CANCELED_TYPE
from jobs.backend.recovery import recover_abandoned
from jobs.models import Attempt, JobEvent, JobRecord
from jobs.services import transitions
from jobs.services.control import CANCEL_WAITING
from jobs.services.reconcile import find_differences
from tests.conftest import wait_for, work

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status


def status_of(job: JobRecord) -> str:
    return JobRecord.objects.get(pk=job.pk).status


def sleeper(seconds: float) -> JobRecord:
    return services.job_submit(task="demo.sleep", payload={"seconds": seconds})


def start_worker(spawn: Any, kind: str) -> Any:
    if kind == "classic":
        return spawn("rqworker", "default")
    return spawn("rqworker", "default", "--concurrency", "3", "--execution", kind)


def canceled_attempt(job: JobRecord) -> Attempt | None:
    return Attempt.objects.filter(job=job, exc_type=CANCELED_TYPE).first()


@pytest.mark.parametrize(
    "kind",
    [
        "classic",
        "thread",
        "process",
    ],
)
def test_cancel_stops_a_running_job_once_and_the_worker_serves_on(
    spawn, monitor, operator_user, operator_client, kind
):
    proc = start_worker(spawn, kind)
    target = sleeper(600)
    # On the slot workers, two jobs run beside it.
    others = [sleeper(3) for _ in range(2)] if kind != "classic" else []
    wait_for(lambda: status_of(target) == Status.STARTED, timeout=60)
    if others:
        wait_for(
            lambda: all(status_of(j) == Status.STARTED for j in others), timeout=60
        )
    # The job page offers Cancel for a running job to an operator.
    page = operator_client.get(f"/jobs/{target.pk}/").content.decode()
    assert f'action="/jobs/{target.pk}/cancel/"' in page

    result = services.job_cancel(
        record=JobRecord.objects.get(pk=target.pk), actor=operator_user
    )

    assert (result.done, dict(result.skipped)) == (1, {})
    assert status_of(target) == Status.CANCELED
    attempt = wait_for(lambda: canceled_attempt(target), timeout=60)
    assert operator_user.get_username() in attempt.exc_message
    assert Attempt.objects.filter(job=target).count() == 1  # never retried
    (event,) = JobEvent.objects.filter(job=target, kind=JobEvent.Kind.CANCELED)
    assert event.actor == operator_user
    assert "while it ran" in event.message
    for job in others:
        wait_for(lambda job=job: status_of(job) == Status.SUCCEEDED, timeout=60)
        assert Attempt.objects.filter(job=job).count() == 1
    # The worker serves on.
    after = services.job_submit(task="demo.echo", payload={"text": "after"})
    wait_for(lambda: status_of(after) == Status.SUCCEEDED, timeout=90)
    assert proc.poll() is None
    assert status_of(target) == Status.CANCELED
    assert Attempt.objects.filter(job=target).count() == 1
    assert find_differences() == []
    # Canceled twice: the second says so, and changes nothing.
    again = services.job_cancel(
        record=JobRecord.objects.get(pk=target.pk), actor=operator_user
    )
    assert (again.done, dict(again.skipped)) == (0, {"already canceled": 1})


def test_a_job_that_finished_first_stays_succeeded(recorder, operator_user):
    job = services.job_submit(task="demo.echo", payload={"text": "quick"})
    work()  # it ran and ended in Redis; the history has not heard yet
    assert status_of(job) != Status.SUCCEEDED

    result = services.jobs_cancel(ids=[job.pk], actor=operator_user)

    assert (result.done, dict(result.skipped)) == (0, {"already finished": 1})
    recorder.drain_all()
    assert status_of(job) == Status.SUCCEEDED
    assert not JobEvent.objects.filter(job=job, kind=JobEvent.Kind.CANCELED).exists()
    assert (
        result.summary("Canceled") == "Canceled 0 jobs; 1 skipped: 1 already finished"
    )


def test_a_job_whose_worker_is_gone_is_canceled_and_never_run_again(
    spawn, recorder, operator_user
):
    proc = spawn("rqworker", "default")
    job = sleeper(600)

    def started() -> bool:
        recorder.drain_all()
        return status_of(job) == Status.STARTED

    wait_for(started, timeout=60)
    proc.send_signal(signal.SIGKILL)  # its job process dies with it
    proc.wait()

    result = services.job_cancel(
        record=JobRecord.objects.get(pk=job.pk), actor=operator_user
    )
    assert result.done == 1
    assert status_of(job) == Status.CANCELED

    # Its heartbeats run out: the lost-worker recovery finds it.
    client = connect.connection()
    key = queueing.rq_queue("default").started_job_registry.key
    for entry in client.zrange(key, 0, -1):
        client.zadd(key, {entry: 1})
    (recovered,) = recover_abandoned(["default"])
    assert (recovered.job_id, recovered.requeued) == (job.pk, False)
    recorder.drain_all()
    assert status_of(job) == Status.CANCELED
    (attempt,) = Attempt.objects.filter(job=job)
    assert attempt.exc_type == CANCELED_TYPE
    assert operator_user.get_username() in attempt.exc_message
    assert queueing.rq_queue("default").count == 0  # not back in its queue
    assert find_differences() == []


def test_emptying_a_queue_leaves_running_jobs_alone(spawn, monitor, operator_user):
    spawn("rqworker", "default")
    running = sleeper(600)
    wait_for(lambda: status_of(running) == Status.STARTED, timeout=60)
    # What an emptied queue cancels (a job a worker took meanwhile runs on).
    result = services.jobs_act(
        action=CANCEL_WAITING, ids=[running.pk], actor=operator_user
    )
    assert (result.done, dict(result.skipped)) == (0, {"already running": 1})
    assert status_of(running) == Status.STARTED
    assert cancels.cancel_requested(running.pk) is None


def test_only_the_operators_stop_moves_a_started_job_to_canceled(operator_user):
    job = sleeper(1)
    transitions.move([job.pk], Status.STARTED, repair=True)
    # No event (the recorder's path) may take a running job to canceled...
    assert not transitions.allowed(Status.STARTED, Status.CANCELED)
    record = JobRecord.objects.get(pk=job.pk)
    assert not transitions.step(record, Status.CANCELED)
    assert transitions.move([job.pk], Status.CANCELED) == set()
    # ...only the cancel's stop.
    assert transitions.move([job.pk], Status.CANCELED, stop=True) == {job.pk}
    # And a canceled job takes no outcome afterwards.
    assert transitions.move([job.pk], Status.SUCCEEDED) == set()
    assert transitions.move([job.pk], Status.DEAD) == set()
    assert status_of(job) == Status.CANCELED
