"""The transactional outbox: nothing is lost, nothing is enqueued twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import transaction

from jobs import services
from jobs.backend import connect, queueing
from jobs.models import Attempt, JobRecord
from jobs.services.reconcile import find_differences

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status


def test_rolled_back_transaction_enqueues_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        job = services.job_submit(task="demo.echo", payload={"text": "x"})
        raise RuntimeError("the caller's transaction fails")
    assert not JobRecord.objects.filter(pk=job.pk).exists()
    assert queueing.existing([job.pk]) == set()


def test_job_is_enqueued_only_when_the_transaction_commits():
    with transaction.atomic():
        job = services.job_submit(task="demo.echo", payload={"text": "x"})
        assert queueing.existing([job.pk]) == set()
    assert queueing.existing([job.pk]) == {job.pk}


def test_submissions_during_a_redis_outage_all_run_exactly_once(
    redis_server, run_until
):
    redis_server.stop()
    try:
        jobs = [
            services.job_submit(task="demo.echo", payload={"text": str(i)})
            for i in range(100)
        ]
        assert all(j.status == Status.PENDING for j in jobs)
        assert JobRecord.objects.filter(status=Status.PENDING).count() == 100
    finally:
        redis_server.start()
    assert services.outbox_relay(grace_seconds=0) == 100
    assert services.outbox_relay(grace_seconds=0) == 0  # already in Redis
    run_until(lambda: JobRecord.objects.filter(status=Status.SUCCEEDED).count() == 100)
    assert Attempt.objects.count() == 100
    assert set(Attempt.objects.values_list("number", flat=True)) == {1}
    assert find_differences() == []


def test_relay_waits_for_the_grace_period():
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.PENDING)
    connect.connection().flushall()
    assert services.outbox_relay(grace_seconds=60) == 0
    assert services.outbox_relay(grace_seconds=0) == 1


def test_the_same_job_is_never_enqueued_twice_by_two_paths():
    """The after-commit enqueue of a large batch can still be running when the
    outbox relay looks at the same jobs: only one of them may enqueue each."""
    jobs = services.job_submit_many(
        requests=[
            services.SubmitRequest(task="demo.echo", payload={"text": str(i)})
            for i in range(3)
        ]
    )
    specs = [services.submit.spec_for(j, [], False) for j in jobs]
    queueing.enqueue(specs)  # the relay, racing the first enqueue
    assert connect.connection().llen("rq:queue:default") == 3


def test_relay_and_operator_retry_claim_the_same_round():
    """An operator's retry leaves the record pending until its after-commit
    enqueue runs; the relay may get there first. It must go on with the job's
    numbering, and the retry's own enqueue must then find the round taken."""
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.PENDING, attempts=3)
    connect.connection().flushall()  # the retry has dropped the old job
    assert services.outbox_relay(grace_seconds=0) == 1
    meta = json.loads(connect.connection().hget(f"rq:job:{job.pk}", "meta"))
    assert meta["attempt_offset"] == 3
    job.refresh_from_db()
    retry = services.submit.spec_for(job, [], False)
    queueing.enqueue([retry])  # the operator's retry, late
    assert connect.connection().llen("rq:queue:default") == 1


@contextmanager
def status_updates_fail() -> Iterator[None]:
    """A real database error on any change of a job's status (as a deadlock
    with the recorder would raise)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TEMP TRIGGER refuse_status BEFORE UPDATE OF status "
                "ON jobs_jobrecord BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse_status() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_status BEFORE UPDATE OF status ON "
                "jobs_jobrecord FOR EACH ROW EXECUTE FUNCTION refuse_status()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER refuse_status")
            else:
                cursor.execute("DROP TRIGGER refuse_status ON jobs_jobrecord")
                cursor.execute("DROP FUNCTION refuse_status()")


def test_a_failed_status_mark_does_not_fail_the_submission(recorder):
    with status_updates_fail():
        jobs = services.job_submit_many(
            requests=[
                services.SubmitRequest(task="demo.echo", payload={"text": str(i)})
                for i in range(3)
            ]
        )
        statuses = set(JobRecord.objects.values_list("status", flat=True))
    assert statuses == {Status.PENDING}
    assert queueing.existing(j.pk for j in jobs) == {j.pk for j in jobs}
    assert services.outbox_relay(grace_seconds=0) == 0  # already in Redis
    recorder.drain_all()  # the "enqueued" events say what the mark could not
    assert set(JobRecord.objects.values_list("status", flat=True)) == {Status.QUEUED}


def test_a_large_bulk_is_marked_enqueued_by_the_recorder(recorder):
    size = services.submit.MARK_AT_ONCE_UP_TO + 1
    small, large = (
        services.job_submit_many(
            requests=[
                services.SubmitRequest(task="demo.echo", payload={"text": str(i)})
                for i in range(count)
            ]
        )
        for count in (3, size)
    )
    statuses = dict(JobRecord.objects.values_list("pk", "status"))
    assert {statuses[j.pk] for j in small} == {Status.QUEUED}
    assert {statuses[j.pk] for j in large} == {Status.PENDING}
    assert {j.status for j in large} == {Status.QUEUED}  # what the caller sees
    assert queueing.existing(j.pk for j in large) == {j.pk for j in large}
    recorder.drain_all()
    assert JobRecord.objects.filter(status=Status.QUEUED).count() == 3 + size
