"""Django's standard Tasks API on this project's jobs, through the public API
only (`@task`, `enqueue`, `using`, `get_result`, `refresh`, signals), with
real workers. Runs on Django 6.0 (django.tasks) and on Django 5.2 with the
django-tasks backport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import queueing, services
from jobs.models import JobRecord
from jobs.workers import ConsoleSimpleWorker
from tests import standard_docs, standard_tasks
from tests.conftest import database_url_for_subprocesses, wait_for
from tests.factories import user_in

try:
    from django.tasks import TaskResultStatus, default_task_backend, task
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the backport
    from django_tasks import (  # type: ignore[no-redef, unused-ignore]
        TaskResultStatus,
        default_task_backend,
        task,
    )
    from django_tasks.exceptions import (  # type: ignore[no-redef, unused-ignore]
        InvalidTaskError as InvalidTask,
    )
    from django_tasks.exceptions import (  # type: ignore[no-redef, unused-ignore]
        TaskResultDoesNotExist,
    )
    from django_tasks.signals import (  # type: ignore[no-redef, unused-ignore]
        task_enqueued,
        task_finished,
        task_started,
    )

pytestmark = pytest.mark.django_db(transaction=True)
BACKEND = "jobs.tasks_backend.ConsoleTaskBackend"
MODULES = ["jobs.tasks.demo", "tests.standard_tasks", "tests.standard_docs"]
SIGNALS_KEY = "tests:signals"


@pytest.fixture(autouse=True)
def tasks_settings(settings: Any) -> None:
    settings.JOB_TASK_MODULES = MODULES
    settings.TASKS = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"RETRY": {"max_attempts": 3, "base": 0, "jitter": 0}},
        }
    }


def finished(result: Any) -> Any:
    def check() -> bool:
        result.refresh()
        return bool(result.is_finished)

    return check


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
    queueing.connection().flushall()
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


@pytest.fixture
def signals_seen() -> Iterator[list[dict[str, Any]]]:
    """Receivers that note each signal in Redis: task_started and
    task_finished fire in the job's process."""

    def note(signal_name: str) -> Any:
        def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
            entry = {
                "signal": signal_name,
                "sender": sender.__name__,
                "id": task_result.id,
                "status": str(task_result.status),
                "attempts": task_result.attempts,
            }
            queueing.connection().rpush(SIGNALS_KEY, json.dumps(entry))

        return receiver

    receivers = [
        (signal, note(name))
        for signal, name in [
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        ]
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)

    seen: list[dict[str, Any]] = []
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def read_signals() -> list[dict[str, Any]]:
    return [json.loads(e) for e in queueing.connection().lrange(SIGNALS_KEY, 0, -1)]


def test_signals_fire_as_django_documents(signals_seen, run_until):
    ok = standard_tasks.add.enqueue(1, 2)
    failing = standard_tasks.succeeds_on.enqueue(attempt=2)
    run_until(lambda: finished(ok)() and finished(failing)())
    seen = [(s["signal"], s["id"], s["status"], s["attempts"]) for s in read_signals()]
    assert [s for s in seen if s[1] == ok.id] == [
        ("enqueued", ok.id, "READY", 0),
        ("started", ok.id, "RUNNING", 1),
        ("finished", ok.id, "SUCCESSFUL", 1),
    ]
    assert [s for s in seen if s[1] == failing.id] == [
        ("enqueued", failing.id, "READY", 0),
        ("started", failing.id, "RUNNING", 1),
        ("started", failing.id, "RUNNING", 2),
        ("finished", failing.id, "SUCCESSFUL", 2),
    ]
    assert {s["sender"] for s in read_signals()} == {"ConsoleTaskBackend"}


def test_enqueue_in_a_transaction_waits_for_the_commit(signals_seen):
    with transaction.atomic():
        result = standard_tasks.add.enqueue(1, 2)
        assert JobRecord.objects.get(pk=result.id).status == JobRecord.Status.PENDING
        assert read_signals() == []
        assert not queueing.existing([result.id])
    assert queueing.existing([result.id]) == {result.id}
    assert [s["signal"] for s in read_signals()] == ["enqueued"]


def test_rolled_back_enqueue_leaves_nothing(signals_seen):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = standard_tasks.add.enqueue(1, 2)
        raise RuntimeError("roll back")
    assert not JobRecord.objects.filter(pk=result.id).exists()
    assert not queueing.existing([result.id])
    assert read_signals() == []


def test_console_shows_the_arguments_and_its_retry_reruns_them(run_until, settings):
    settings.TASKS = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"RETRY": {"max_attempts": 2, "base": 0, "jitter": 0}},
        }
    }
    result = standard_tasks.succeeds_on.enqueue(attempt=4)
    run_until(finished(result))
    assert result.status == TaskResultStatus.FAILED and result.attempts == 2
    client = Client()
    client.force_login(user_in("Operators"))
    page = client.get(reverse("jobs:job", args=[result.id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "tests.standard_tasks.succeeds_on" in text
    assert "from django tasks api" in text
    assert "&quot;kwargs&quot;" in text and "&quot;attempt&quot;: 4" in text
    retried = client.post(reverse("jobs:job-retry", args=[result.id]))
    assert retried.status_code in (200, 302)
    run_until(finished(result))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["attempt"] == 4
    assert result.attempts == 4 and len(result.errors) == 3


def test_unknown_backend_options_fail_the_system_checks(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {
                "RETRIES": {},
                "TASK_OPTIONS": {"a.b": {"RETRY": {"tries": 2}}},
            },
        }
    }
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "jobs.E101" in str(raised.value)
    assert "'RETRIES'" in str(raised.value) and "'tries'" in str(raised.value)
    settings.TASKS = {
        "default": {"BACKEND": BACKEND, "OPTIONS": {"TASK_OPTIONS": {"a.b": [1]}}}
    }
    with pytest.raises(SystemCheckError, match="RETRY must be a dictionary"):
        call_command("check")


def test_async_enqueue_and_get_result(run_until):
    async def go() -> Any:
        return await standard_tasks.add.aenqueue(4, 5)

    result = asyncio.run(go())
    run_until(finished(result))

    async def read() -> Any:
        return await standard_tasks.add.aget_result(result.id)

    assert asyncio.run(read()).return_value == 9


# -- Django's documentation examples, unchanged --------------------------------


def work_in_this_process() -> None:
    """A burst of the non-forking worker: the task's e-mail lands in this
    process's locmem outbox."""
    worker = ConsoleSimpleWorker(["default"], connection=queueing.connection())
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def test_documentation_email_task_runs_unchanged(recorder):
    result = standard_docs.email_users.enqueue(
        emails=["user@example.com"],
        subject="You have a message",
        message="Hello there!",
    )
    work_in_this_process()
    recorder.drain_all()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 1
    assert [m.subject for m in mail.outbox] == ["You have a message"]
    assert mail.outbox[0].to == ["user@example.com"]


def test_documentation_email_task_with_run_after_and_context(run_until):
    when = timezone.now() + timedelta(seconds=1)
    result = standard_docs.email_users_with_context.using(run_after=when).enqueue(
        emails=["user@example.com"],
        subject="Later",
        message="Hello there!",
    )
    assert result.status == TaskResultStatus.READY
    run_until(finished(result))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 1
    assert result.started_at >= when


@pytest.mark.slow
def test_usual_rqworker_runs_standard_and_native_tasks_side_by_side(spawn, monitor):
    spawn(
        "rqworker",
        "default",
        "--with-scheduler",
        JOB_TASK_MODULES=",".join(MODULES),
        DATABASE_URL=database_url_for_subprocesses(),
    )
    standard = standard_tasks.succeeds_on.enqueue(attempt=2)
    native = services.job_submit(task="demo.echo", payload={"text": "hi"})
    wait_for(finished(standard), timeout=60)
    assert standard.status == TaskResultStatus.SUCCESSFUL
    assert standard.return_value["attempt"] == 2
    wait_for(
        lambda: JobRecord.objects.get(pk=native.pk).status == JobRecord.Status.SUCCEEDED
    )
