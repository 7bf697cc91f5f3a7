"""A retry clears the job's old state in Redis (queueing._forget) in a few
round trips, and keeps what depends on it."""

from __future__ import annotations

import pytest
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from jobs import services
from jobs.backend import connect, queueing
from jobs.models import JobRecord
from tests.conftest import final

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status


def test_retried_dead_job_leaves_the_failed_registry_and_releases_its_child(
    run_until,
):
    parent = services.job_submit(
        task="demo.fail", payload={"times": 1}, retry={"max_attempts": 1}
    )
    child = services.job_submit(
        task="demo.echo", payload={"text": "after"}, depends_on=[parent.pk]
    )
    run_until(final(parent))
    failed = FailedJobRegistry("default", connection=connect.connection())
    assert parent.pk in failed.get_job_ids()

    services.job_retry(record=JobRecord.objects.get(pk=parent.pk), actor=None)

    assert parent.pk not in failed.get_job_ids()
    assert queueing.statuses([parent.pk]) == {parent.pk: "queued"}
    run_until(final(parent, child))
    assert JobRecord.objects.get(pk=parent.pk).status == Status.SUCCEEDED
    assert JobRecord.objects.get(pk=child.pk).status == Status.SUCCEEDED


def test_retried_canceled_jobs_leave_the_canceled_registry():
    jobs = [
        services.job_submit(task="demo.echo", payload={"text": str(n)}, delay=600)
        for n in range(3)
    ]
    services.jobs_cancel(ids=[j.pk for j in jobs], actor=None)
    client = connect.connection()
    canceled = CanceledJobRegistry("default", connection=client)
    assert set(canceled.get_job_ids()) == {j.pk for j in jobs}
    # Retried within seconds of their enqueue, on the same attempt count (0):
    # the submission's claims have not lapsed, and must not hold the retry.
    assert client.keys("console:enqueuing:*")

    result = services.jobs_retry(ids=[j.pk for j in jobs], actor=None)

    assert result.done == 3
    assert canceled.get_job_ids() == []
    assert set(queueing.statuses([j.pk for j in jobs]).values()) == {"queued"}
    assert queueing.rq_queue("default").count == 3


def test_retry_of_a_job_redis_no_longer_knows():
    record = services.job_submit(task="demo.echo", payload={"text": "gone"})
    connect.connection().flushall()
    JobRecord.objects.filter(pk=record.pk).update(status=Status.DEAD)

    services.job_retry(record=JobRecord.objects.get(pk=record.pk), actor=None)

    assert queueing.statuses([record.pk]) == {record.pk: "queued"}
