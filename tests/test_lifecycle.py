"""Submit, run, retry with backoff, dead letters: real server, real workers."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs import services
from jobs.models import Attempt, JobEvent, JobRecord
from jobs.services.reconcile import find_differences
from tests.conftest import final

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status


def test_submitted_job_runs_and_its_history_is_recorded(run_until):
    job = services.job_submit(task="demo.echo", payload={"text": "hi"})
    assert job.status == Status.QUEUED
    assert JobRecord.objects.get(pk=job.pk).status == Status.QUEUED

    run_until(final(job))

    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert job.result == {"text": "hi"}
    assert job.attempts == 1
    assert job.submitted_at <= job.enqueued_at <= job.started_at <= job.finished_at
    attempt = Attempt.objects.get(job=job)
    assert attempt.outcome == Attempt.Outcome.SUCCEEDED
    assert attempt.pid and attempt.worker_name and attempt.duration is not None
    kinds = list(JobEvent.objects.filter(job=job).values_list("kind", flat=True))
    assert kinds == ["enqueued", "started", "succeeded"]
    assert find_differences() == []


def test_failing_job_is_retried_with_growing_delays_then_succeeds(run_until):
    job = services.job_submit(task="demo.fail", payload={"times": 2})
    run_until(final(job))

    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert job.attempts == 3
    assert job.result == {"succeeded_on_attempt": 3}
    attempts = list(Attempt.objects.filter(job=job).order_by("number"))
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert all("DemoFailure" in a.traceback for a in attempts[:2])
    assert attempts[0].exc_type == "DemoFailure"
    retries = list(JobEvent.objects.filter(job=job, kind=JobEvent.Kind.RETRY_SCHEDULED))
    assert len(retries) == 2
    delays = [r.detail["delay"] for r in retries]
    assert delays[1] > delays[0] > 0  # exponential backoff, equal jitter
    due = [datetime.fromisoformat(r.detail["at"]) for r in retries]
    for _attempt, next_attempt, when in zip(attempts, attempts[1:], due, strict=False):
        assert next_attempt.started_at >= when  # never before its backoff
    assert find_differences() == []


def test_job_that_always_fails_ends_dead_with_every_attempt(run_until):
    job = services.job_submit(
        task="demo.fail", payload={"times": -1, "message": "boom"}
    )
    run_until(final(job))

    job.refresh_from_db()
    assert job.status == Status.DEAD
    assert job.attempts == job.max_attempts == 4
    assert job.error_type == "DemoFailure"
    assert "boom" in job.last_error
    assert job.error_fingerprint
    attempts = Attempt.objects.filter(job=job)
    assert attempts.count() == 4
    assert all(a.outcome == "failed" and "Traceback" in a.traceback for a in attempts)
    assert JobEvent.objects.filter(job=job, kind=JobEvent.Kind.DEAD).count() == 1
    assert find_differences() == []


def test_per_submission_retry_override(run_until):
    job = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 2, "base": 0.1}
    )
    run_until(final(job))
    job.refresh_from_db()
    assert (job.status, job.attempts, job.max_attempts) == (Status.DEAD, 2, 2)


def test_high_priority_work_runs_before_low(recorder):
    from tests.conftest import work

    low = [
        services.job_submit(
            task="demo.echo", payload={"text": f"low {i}"}, priority="low"
        )
        for i in range(50)
    ]
    high = [
        services.job_submit(
            task="demo.echo", payload={"text": f"high {i}"}, priority="high"
        )
        for i in range(5)
    ]
    work()
    recorder.drain_all()
    order = list(JobRecord.objects.order_by("started_at").values_list("pk", flat=True))
    assert set(order[:5]) == {j.pk for j in high}
    assert len(order) == 55
    assert all(r.status == Status.SUCCEEDED for r in JobRecord.objects.all())
    assert {j.pk for j in low} == set(order[5:])


def test_dependent_job_runs_after_both_parents(run_until):
    a = services.job_submit(task="demo.sleep", payload={"seconds": 0.2})
    b = services.job_submit(task="demo.echo", payload={"text": "b"})
    child = services.job_submit(
        task="demo.echo", payload={"text": "child"}, depends_on=[a.pk, b.pk]
    )
    assert child.status == Status.DEFERRED
    run_until(final(a, b, child))
    a.refresh_from_db()
    b.refresh_from_db()
    child.refresh_from_db()
    assert child.status == Status.SUCCEEDED
    assert child.started_at >= max(a.finished_at, b.finished_at)
    assert set(child.parents.values_list("pk", flat=True)) == {a.pk, b.pk}


def test_child_of_a_dead_parent_never_runs_and_says_why(run_until, recorder):
    parent = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
    )
    child = services.job_submit(
        task="demo.echo", payload={"text": "never"}, depends_on=[parent.pk]
    )
    run_until(final(parent))
    child.refresh_from_db()
    assert child.status == Status.DEFERRED
    assert child.attempts == 0
    assert parent.pk in child.last_error and "dead" in child.last_error
    assert JobEvent.objects.filter(job=child, kind=JobEvent.Kind.BLOCKED).exists()


def test_child_with_allow_failure_runs_after_a_dead_parent(run_until):
    parent = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
    )
    child = services.job_submit(
        task="demo.echo",
        payload={"text": "anyway"},
        depends_on=[parent.pk],
        allow_failure=True,
    )
    run_until(final(parent, child))
    child.refresh_from_db()
    assert child.status == Status.SUCCEEDED


def test_delayed_job_does_not_start_early(run_until):
    job = services.job_submit(task="demo.echo", payload={"text": "later"}, delay=2)
    assert job.status == Status.SCHEDULED
    run_until(final(job))
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert (job.started_at - job.submitted_at).total_seconds() >= 2


def test_idempotency_key_returns_the_first_job():
    first = services.job_submit(
        task="demo.echo", payload={"text": "a"}, idempotency_key="order-42"
    )
    second = services.job_submit(
        task="demo.echo", payload={"text": "b"}, idempotency_key="order-42"
    )
    assert second.pk == first.pk
    assert JobRecord.objects.count() == 1


def test_submit_many_writes_and_enqueues_everything(run_until):
    records = services.job_submit_many(
        requests=[
            services.SubmitRequest(task="demo.echo", payload={"text": str(i)})
            for i in range(60)
        ]
    )
    assert len(records) == 60
    run_until(lambda: JobRecord.objects.filter(status=Status.SUCCEEDED).count() == 60)
    assert Attempt.objects.count() == 60
