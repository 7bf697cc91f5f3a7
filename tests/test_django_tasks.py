"""Django's standard Tasks API on this project's jobs, through the public API
only (`@task`, `enqueue`, `using`, `get_result`, `refresh`), with real
workers: results, retries, context, priorities, refusals. Runs on Django 6.0
(django.tasks) and on Django 5.2 with the django-tasks backport."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.backend import connect
from jobs.models import JobRecord
from tests import standard_tasks
from tests.standard_api import (
    BACKEND,
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    default_task_backend,
    finished,
    task,
    tasks_settings,
)

__all__ = ["tasks_settings"]  # the autouse fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_task_runs_on_a_worker_and_its_result_has_the_return_value(run_until):
    result = standard_tasks.add.enqueue(2, b=3)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2] and result.kwargs == {"b": 3}
    assert result.enqueued_at is not None and result.started_at is None
    run_until(finished(result))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.errors == []
    assert result.started_at <= result.last_attempted_at <= result.finished_at
    fresh = standard_tasks.add.get_result(result.id)
    assert fresh.return_value == 5 and fresh.worker_ids == result.worker_ids


def test_standard_task_is_an_ordinary_job(run_until):
    result = standard_tasks.add.enqueue(1, 1)
    record = JobRecord.objects.get(pk=result.id)
    assert record.origin == "django.tasks"
    assert record.task == "tests.standard_tasks.add"
    assert record.queue == "default" and record.priority == "normal"
    assert record.payload["args"] == [1, 1] and record.payload["kwargs"] == {}
    run_until(finished(result))
    assert JobRecord.objects.get(pk=result.id).result == 2


def test_failure_is_retried_then_dead_with_every_error(run_until):
    result = standard_tasks.always_fails.enqueue("no such thing")
    run_until(finished(result))
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.LookupError"
    ] * 3
    assert all("no such thing" in e.traceback for e in result.errors)
    assert result.errors[0].exception_class is LookupError
    assert JobRecord.objects.get(pk=result.id).status == JobRecord.Status.DEAD
    with pytest.raises(ValueError):
        result.return_value  # noqa: B018 - Django raises for a failed task


def test_retry_policy_comes_from_the_backend_options(settings, run_until):
    settings.TASKS = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {
                "RETRY": {"max_attempts": 3, "base": 0, "jitter": 0},
                "TASK_OPTIONS": {
                    "tests.standard_tasks.always_fails": {
                        "RETRY": {"max_attempts": 1},
                        "TIMEOUT": 30,
                    }
                },
            },
        }
    }
    result = standard_tasks.always_fails.enqueue("once")
    record = JobRecord.objects.get(pk=result.id)
    assert record.max_attempts == 1 and record.timeout == 30
    assert record.retry_policy["base"] == 0
    run_until(finished(result))
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1


def test_context_has_the_attempt_and_the_earlier_errors_on_a_retry(run_until):
    result = standard_tasks.succeeds_on.enqueue(attempt=3)
    run_until(finished(result))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {
        "attempt": 3,
        "result_id": result.id,
        "errors": ["builtins.RuntimeError"] * 2,
        "status": "RUNNING",
    }
    assert result.attempts == 3 and len(result.errors) == 2


def test_attempt_of_a_killed_worker_counts_and_names_worker_lost(run_until):
    result = standard_tasks.killed_first.enqueue()
    run_until(finished(result))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 2, "workers": 2}
    assert [e.exception_class_path for e in result.errors] == [
        "jobs.tasks_backend.results.WorkerLost"
    ]
    assert result.errors[0].exception_class.__name__ == "WorkerLost"


def test_async_task_runs(run_until):
    result = standard_tasks.double_later.enqueue(21)
    run_until(finished(result))
    assert result.return_value == 42


def test_return_value_that_is_not_json_fails_the_task(run_until):
    result = standard_tasks.returns_a_set.using().enqueue()
    run_until(finished(result))
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "builtins.TypeError"
    assert "cannot be stored as JSON" in result.errors[-1].traceback


def test_run_after_waits_until_then(run_until):
    when = timezone.now() + timedelta(seconds=2)
    result = standard_tasks.add.using(run_after=when).enqueue(1, 2)
    assert JobRecord.objects.get(pk=result.id).status == JobRecord.Status.SCHEDULED
    assert result.task.run_after == when
    run_until(finished(result))
    assert result.return_value == 3
    assert result.started_at >= when
    assert standard_tasks.add.get_result(result.id).task.run_after == when


def test_priority_maps_onto_lanes_and_higher_runs_first(run_until):
    normal = [standard_tasks.add.enqueue(i, 0) for i in range(3)]
    low = standard_tasks.add.using(priority=-1).enqueue(0, 0)
    high = standard_tasks.add.using(priority=10).enqueue(9, 9)
    lanes = {
        r.id: JobRecord.objects.get(pk=r.id).priority for r in [*normal, low, high]
    }
    assert lanes[high.id] == "high" and lanes[low.id] == "low"
    assert {lanes[r.id] for r in normal} == {"normal"}
    run_until(finished(low))
    for r in [*normal, high]:
        r.refresh()
    order = sorted([*normal, low, high], key=lambda r: r.started_at)
    assert order[0].id == high.id and order[-1].id == low.id
    assert standard_tasks.add.get_result(high.id).task.priority == 10


def test_task_queue_and_priority_from_the_decorator(run_until):
    result = standard_tasks.nightly_report.enqueue("may")
    record = JobRecord.objects.get(pk=result.id)
    assert (record.queue, record.priority) == ("reports", "low")
    run_until(finished(result), queues=("reports",))
    assert result.return_value == "may"


def test_arguments_that_are_not_json_are_refused():
    for args in [(timezone.now(), 1), ({1: "integer key"}, 2), (float("nan"), 1)]:
        with pytest.raises(TypeError, match="JSON"):
            standard_tasks.add.enqueue(*args)
    with pytest.raises(TypeError, match="keyword arguments"):
        standard_tasks.add.enqueue(a=object(), b=1)
    assert not JobRecord.objects.exists()


def test_invalid_tasks_are_refused_with_invalid_task():
    def nested(a: int) -> int:
        return a

    with pytest.raises(InvalidTask, match="module level"):
        task()(nested)
    with pytest.raises(InvalidTask, match="nowhere"):
        standard_tasks.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match="priority"):
        standard_tasks.add.using(priority=101)
    with pytest.raises(InvalidTask, match="aware"):
        standard_tasks.add.using(run_after=timezone.now().replace(tzinfo=None))


def test_task_outside_job_task_modules_is_refused(settings):
    settings.JOB_TASK_MODULES = ["jobs.tasks.demo"]
    with pytest.raises(InvalidTask, match="JOB_TASK_MODULES"):
        standard_tasks.add.enqueue(1, 2)
    assert not JobRecord.objects.exists()


def test_queue_not_in_job_queues_is_refused_even_if_the_backend_lists_it(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "x"]}}
    with pytest.raises(InvalidTask, match="JOB_QUEUES"):
        standard_tasks.add.using(queue_name="x")


def test_enqueue_while_redis_is_down_waits_in_the_outbox(redis_server, run_until):
    redis_server.stop()
    try:
        result = standard_tasks.add.enqueue(3, 4)
        assert result.status == TaskResultStatus.READY
        assert JobRecord.objects.get(pk=result.id).status == JobRecord.Status.PENDING
    finally:
        redis_server.start()
    assert services.outbox_relay(grace_seconds=0) == 1
    run_until(finished(result))
    assert result.return_value == 7 and result.attempts == 1


def test_result_is_read_from_history_after_redis_forgot_the_job(run_until):
    result = standard_tasks.add.enqueue(20, 22)
    run_until(finished(result))
    connect.connection().flushall()
    found = default_task_backend.get_result(result.id)
    assert found.status == TaskResultStatus.SUCCESSFUL
    assert found.return_value == 42
    assert found.finished_at == result.finished_at
    assert found.task.func is standard_tasks.add.func


def test_standard_task_submitted_from_another_door_has_a_result(run_until):
    standard_tasks.add.using()  # validated in this process, as an import does
    record = services.job_submit(
        task="tests.standard_tasks.add", payload={"args": [5, 6]}, origin="api"
    )
    result = default_task_backend.get_result(record.pk)
    run_until(finished(result))
    assert result.return_value == 11 and result.kwargs == {}
    native = services.job_submit(task="demo.echo", payload={"text": "x"})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(native.pk)


def test_native_task_cannot_take_a_standard_task_name():
    from pydantic import BaseModel

    from jobs.registry import task as native_task

    class Nothing(BaseModel):
        pass

    def add(payload: Nothing) -> None:
        pass

    with pytest.raises(ValueError, match="already registered"):
        native_task("tests.standard_tasks.add", schema=Nothing)(add)


def test_unknown_result_id_does_not_exist():
    for result_id in ["0" * 32, "", "x\x00y", "z" * 100]:
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)
