"""Stopping a worker from the console, the CLI and the API (one service):
RQ's shutdown command, asked once, the running jobs finishing first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from jobs.backend import connect
from jobs.backend.workers import ConsoleWorker
from jobs.models import Attempt, JobRecord, OperatorAction
from tests.conftest import wait_for, worker_pid
from tests.factories import user_in
from tests.test_api import bearer, post
from tests.test_slots import sleepers, slot_worker, statuses

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status


@pytest.fixture
def registered() -> Iterator[ConsoleWorker]:
    """A registered worker (no process behind it) and its command channel,
    on which RQ's shutdown command would reach it."""
    worker = ConsoleWorker(["default"], connection=connect.connection())
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


def _commands(worker: ConsoleWorker) -> Any:
    channel = connect.connection().pubsub(ignore_subscribe_messages=True)
    channel.subscribe(worker.pubsub_channel_name)
    wait_for(lambda: channel.get_message(timeout=0.1) is None)
    return channel


def _received(channel: Any) -> list[dict[str, Any]]:
    found = []
    while (message := channel.get_message(timeout=0.5)) is not None:
        found.append(json.loads(message["data"]))
    return found


def test_the_api_and_the_cli_ask_a_worker_once(registered):
    channel = _commands(registered)
    operator = bearer("Operators")
    url = f"/api/workers/{quote(registered.name)}/stop/"
    first = post(url, {"reason": "draining the host"}, operator)
    assert first.status_code == 202
    assert first.json() == {"name": registered.name, "asked": True}
    assert _received(channel) == [{"command": "shutdown"}]
    # Asked once: a second shutdown command would be RQ's cold shutdown.
    again = post(url, {}, operator)
    assert (again.status_code, again.json()["asked"]) == (202, False)
    out = StringIO()
    call_command("jobs", "stop-worker", registered.name, stdout=out)
    assert out.getvalue().strip() == (
        f"Nothing done: {registered.name} is stopping already."
    )
    assert _received(channel) == []
    (entry,) = OperatorAction.objects.all()
    assert (entry.action, entry.target, entry.reason, entry.origin) == (
        "stop-worker",
        f"worker {registered.name}",
        "draining the host",
        "api",
    )


def test_the_cli_asks_a_worker_to_stop(registered):
    channel = _commands(registered)
    out = StringIO()
    call_command("jobs", "stop-worker", registered.name, "--reason", "r", stdout=out)
    assert out.getvalue().startswith(f"Asked {registered.name} to stop")
    assert _received(channel) == [{"command": "shutdown"}]
    assert OperatorAction.objects.get().origin == "cli"


def test_no_such_worker_is_a_clear_error_at_every_door():
    operator = bearer("Operators")
    missing = post("/api/workers/nobody.1.aa/stop/", {}, operator)
    assert missing.status_code == 404
    assert "no live worker named 'nobody.1.aa'" in missing.json()["error"]
    bad = post("/api/workers/bad%01name/stop/", {}, operator)
    assert bad.status_code == 400
    with pytest.raises(CommandError, match="no live worker named"):
        call_command("jobs", "stop-worker", "nobody.1.aa", stdout=StringIO())
    client = Client()
    client.force_login(user_in("Operators", "console-operator"))
    page = client.get("/workers/nobody.1.aa/stop/")
    assert page.status_code == 404
    assert b"No live worker is named" in page.content
    assert client.post("/workers/nobody.1.aa/stop/").status_code == 404
    assert not OperatorAction.objects.exists()


def test_only_operators_may_stop_a_worker(registered):
    channel = _commands(registered)
    url = f"/workers/{quote(registered.name)}/stop/"
    viewer = Client()
    viewer.force_login(user_in("Viewers", "console-viewer"))
    assert viewer.get(url).status_code == 403
    assert viewer.post(url).status_code == 403
    assert "Stop…" not in viewer.get("/workers/").content.decode()
    token = bearer("Viewers")
    api = f"/api/workers/{quote(registered.name)}/stop/"
    assert post(api, {}, token).status_code == 403
    assert _received(channel) == []
    operator = Client()
    operator.force_login(user_in("Operators", "console-operator"))
    assert f'href="{url}">Stop…</a>' in operator.get("/workers/").content.decode()
    # An idle worker's page says it exits at once.
    assert "runs none now: it exits" in operator.get(url).content.decode()
    assert not OperatorAction.objects.exists()


@pytest.mark.slow
def test_a_stopped_worker_finishes_its_running_jobs_then_exits(spawn, monitor):
    proc = slot_worker(spawn, 2, "thread")
    jobs = sleepers(2, 3)
    wait_for(lambda: set(statuses(jobs)) == {Status.STARTED}, timeout=60)
    name = JobRecord.objects.get(pk=jobs[0].pk).worker_name
    assert worker_pid(name) == proc.pid
    operator = Client()
    operator.force_login(user_in("Operators"))
    url = f"/workers/{quote(name)}/stop/"
    page = operator.get(url).content.decode()
    assert "finishes the 2 jobs it runs, then exits" in page
    done = operator.post(url, {"reason": "new release"}, follow=True)
    assert done.redirect_chain == [("/workers/", 302)]
    said = [str(m) for m in done.context["messages"]]
    assert said == [
        f"Asked {name} to stop: it takes no new job, finishes the 2 it runs, "
        "then exits."
    ]
    # The Workers screen says it is stopping until it has gone.
    wait_for(
        lambda: 'class="muted stopping"' in operator.get("/workers/").content.decode()
    )
    waiting = sleepers(1, 1)
    assert proc.wait(timeout=60) == 0
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=30)
    assert statuses(waiting) == [Status.QUEUED]  # it took no new job
    assert Attempt.objects.filter(job__in=jobs).count() == 2
    entry = OperatorAction.objects.get()
    assert (entry.action, entry.reason, entry.origin) == (
        "stop-worker",
        "new release",
        "web",
    )
    gone = operator.post(url, follow=True)
    assert gone.status_code == 404


@pytest.mark.slow
def test_a_stopped_one_job_worker_finishes_its_job_then_exits(workers, monitor):
    """The default worker (a job process forked per job, RQ's scheduler in
    it) answers RQ's shutdown command as it does SIGTERM."""
    (proc,) = workers(1)
    (job,) = sleepers(1, 3)
    wait_for(lambda: statuses([job]) == [Status.STARTED], timeout=60)
    name = JobRecord.objects.get(pk=job.pk).worker_name
    out = StringIO()
    call_command("jobs", "stop-worker", name, stdout=out)
    assert out.getvalue().startswith(f"Asked {name} to stop")
    assert proc.wait(timeout=60) == 0
    wait_for(lambda: statuses([job]) == [Status.SUCCEEDED], timeout=30)
    assert Attempt.objects.filter(job=job).count() == 1


def test_the_workers_screen_shows_names_no_route_takes_unlinked(redis_server):
    """A worker's hash is anyone's to write: a name, a queue or a current job
    with a "/" in it is shown, not linked, rather than failing the page."""
    client = connect.connection()
    key = "rq:worker:other/tool.1.aa"
    client.sadd("rq:workers", key)
    client.hset(
        key,
        mapping={
            "pid": "1",
            "queues": "default,x/y",
            "state": "busy",
            "current_job": "a/b",
        },
    )
    operator = Client()
    operator.force_login(user_in("Operators", "console-operator"))
    page = operator.get("/workers/")
    assert page.status_code == 200
    body = page.content.decode()
    assert '<span class="mono">x/y</span>' in body
    assert '<span title="a/b">a/b</span>' in body
    assert "other/tool.1.aa/stop/" not in body
    assert 'href="/queues/default/"' in body
