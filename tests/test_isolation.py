"""One job's failure never harms another job or the worker (real processes).

A job that raises, exits, segfaults, is killed or hangs past its timeout ends
its own attempt; the worker that ran it lives on with the same pid, and the
jobs queued around it succeed.
"""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import Attempt, JobRecord
from jobs.services.reconcile import find_differences
from tests.conftest import wait_for, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status
ONE_ATTEMPT = {"max_attempts": 1}


def _echoes(count: int) -> list[JobRecord]:
    return [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("task", "payload", "timeout", "exc_type"),
    [
        ("demo.fail", {"times": -1}, None, "DemoFailure"),
        ("demo.crash", {"how": "segfault"}, None, "WorkerLost"),
        ("demo.crash", {"how": "exit"}, None, "WorkerLost"),
        ("demo.crash", {"how": "kill"}, None, "WorkerLost"),
        ("demo.sleep", {"seconds": 60}, 1, "JobTimeoutException"),
    ],
    ids=["raises", "segfaults", "exits", "killed", "hangs-past-timeout"],
)
def test_a_failing_job_harms_no_other_job_and_no_worker(
    workers, monitor, task, payload, timeout, exc_type
):
    before = _echoes(3)
    bad = services.job_submit(
        task=task, payload=payload, retry=ONE_ATTEMPT, timeout=timeout
    )
    after = _echoes(3)
    (proc,) = workers(1)
    wait_for(lambda: JobRecord.objects.get(pk=bad.pk).status == Status.DEAD, timeout=60)
    wait_for(
        lambda: (
            JobRecord.objects.filter(
                pk__in=[j.pk for j in before + after], status=Status.SUCCEEDED
            ).count()
            == 6
        ),
        timeout=60,
    )
    attempt = Attempt.objects.get(job=bad)
    assert attempt.exc_type == exc_type
    ran_on = {a.worker_name for a in Attempt.objects.filter(job__in=before + after)}
    assert {worker_pid(name) for name in ran_on} == {proc.pid}
    assert worker_pid(attempt.worker_name) == proc.pid
    assert proc.poll() is None  # the worker lives on
    assert find_differences() == []
