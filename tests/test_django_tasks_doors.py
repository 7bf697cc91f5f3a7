"""Django's standard Tasks API at the edges: signals, transactions, the
outbox, the console, the system checks, async calls, Django's documentation
examples and the usual `rqworker` command. Public API only; runs on Django
6.0 and on Django 5.2 with the backport."""

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

from jobs import services
from jobs.backend import connect, queueing
from jobs.backend.workers import ConsoleSimpleWorker
from jobs.models import JobRecord
from tests import standard_api, standard_docs, standard_tasks
from tests.conftest import database_url_for_subprocesses, wait_for
from tests.factories import user_in
from tests.standard_api import (  # noqa: F401 - tasks_settings: autouse fixture
    BACKEND,
    MODULES,
    TaskResultStatus,
    finished,
    tasks_settings,
)

pytestmark = pytest.mark.django_db(transaction=True)
SIGNALS_KEY = "tests:signals"


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
            connect.connection().rpush(SIGNALS_KEY, json.dumps(entry))

        return receiver

    receivers = [
        (signal, note(name))
        for signal, name in [
            (standard_api.task_enqueued, "enqueued"),
            (standard_api.task_started, "started"),
            (standard_api.task_finished, "finished"),
        ]
    ]
    for signal, receiver in receivers:
        signal.connect(receiver)

    seen: list[dict[str, Any]] = []
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def read_signals() -> list[dict[str, Any]]:
    return [json.loads(e) for e in connect.connection().lrange(SIGNALS_KEY, 0, -1)]


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
    retried = client.post(reverse("jobs:job-action", args=[result.id, "retry"]))
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
    worker = ConsoleSimpleWorker(["default"], connection=connect.connection())
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
