"""What makes a worker a good parent for its job processes."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading

import pytest
import redis
from django.db import connection

from jobs import services
from jobs.backend import connect, forking, recording, workers
from jobs.models import JobRecord
from jobs.processes.monitor import checkpoint_sqlite
from tests.conftest import BASE_DIR, final, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_keeps_the_server_and_credentials_of_the_given_client(redis_server):
    given = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3")
    client = connect.worker_connection(given)
    options = client.connection_pool.connection_kwargs
    assert options["port"] == given.connection_pool.connection_kwargs["port"]
    assert options["password"] == given.connection_pool.connection_kwargs["password"]
    assert options["db"] == 3
    assert options["socket_timeout"] > 0
    client.set("worker-connection-check", "1")
    assert given.get("worker-connection-check") == b"1"


def test_connections_do_not_announce_the_client_library(redis_server):
    """CLIENT SETINFO costs two round trips and a metadata read per new
    connection (a job process's own, when its worker could not lend it one)."""
    client = connect.worker_connection(connect.connection())
    client.ping()
    mine = [c for c in client.client_list() if c.get("lib-name")]
    assert mine == []


def test_a_worker_imports_the_runner_before_it_forks(redis_server, monkeypatch):
    monkeypatch.delitem(sys.modules, "jobs.runner", raising=False)
    # An in-process worker of an earlier test may have prepared this process.
    monkeypatch.setattr(forking, "_prepared_in", None)
    gc.unfreeze()
    forking.prepare_to_fork()
    assert "jobs.runner" in sys.modules
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def test_resident_size_is_read_at_most_once_a_second(monkeypatch):
    forking._rss[:] = [0.0, 0.0]
    first = forking.resident_kb()
    assert first > 0
    monkeypatch.setattr(workers, "open", lambda *a, **k: 1 / 0, raising=False)
    assert forking.resident_kb() == first  # served from the last reading


def test_monitor_checkpoints_the_sqlite_log(run_until):
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    run_until(final(job))
    checkpoint_sqlite()
    if connection.vendor != "sqlite":
        return  # nothing to checkpoint
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        busy, frames, copied = cursor.fetchone()
    assert busy == 0 and frames == copied
    assert JobRecord.objects.get(pk=job.pk).status == JobRecord.Status.SUCCEEDED


def test_a_worker_survives_redis_going_away_as_its_scheduler_starts(redis_server):
    """RQ takes the scheduler's locks outside its work loop's error handling:
    a Redis restart at that moment ended the worker (seen in CI)."""
    worker = workers.ConsoleWorker(["default"], connection=connect.connection())
    redis_server.stop()
    try:
        worker._start_scheduler()  # raised ConnectionError: the worker quit
    finally:
        redis_server.start()
    assert worker.scheduler is not None
    assert not worker.scheduler.acquired_locks
    worker.scheduler.acquire_locks()  # what RQ's maintenance retries later
    assert worker.scheduler.acquired_locks
    worker.scheduler.release_locks()


def test_a_worker_starting_while_redis_restarts_waits_for_it(redis_server):
    worker = workers.ConsoleWorker(["default"], connection=connect.connection())
    redis_server.stop()
    back = threading.Timer(1.0, redis_server.start)
    back.start()
    try:
        worker.bootstrap()  # raised ConnectionError: the worker quit
    finally:
        back.join()
    try:
        assert worker.connection.exists(worker.key)
        assert worker.get_state() == "started"
    finally:
        worker.teardown()


#: What a worker leaves to the web: importing any of these cost it memory
#: (`make bench` figure 5) for pages it never serves.
WEB_ONLY_MODULES = (
    "django.template.defaulttags",  # templates
    "django.views.debug",  # Django's default logging's e-mail handler
    "django_prometheus.middleware",  # middleware, imported by auth's check
    "django.db.migrations.autodetector",  # the migration commands' check
)

WORKER_MODULES = """
import atexit, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
sys.argv = ["manage.py", "rqworker", "default", "--burst", "-v", "0"]
sys.path.insert(0, {base!r})
atexit.register(lambda: print(json.dumps(sorted(sys.modules))))
from console.startup import run_or_explain
run_or_explain(sys.argv)
"""


def python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A burst worker's run to its end, as the tests' subprocesses run."""
    return subprocess.run(
        [sys.executable, *args],
        env=subprocess_env(**env),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_worker_imports_nothing_only_the_web_uses(redis_server):
    done = python("-c", WORKER_MODULES.format(base=str(BASE_DIR)))
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "jobs.runner" in loaded  # it did start and prepare to fork
    assert loaded.isdisjoint(WEB_ONLY_MODULES), loaded & set(WEB_ONLY_MODULES)


def test_a_worker_refuses_to_start_when_its_checks_fail(redis_server):
    done = python(
        str(BASE_DIR / "manage.py"),
        *("rqworker", "default", "--burst"),
        JOB_TASK_MODULES="jobs.tasks.demo,tests.misrouted_tasks",
    )
    assert done.returncode != 0
    assert "jobs.E001" in done.stderr
    assert "'nowhere'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_leaves_its_command_channel_at_once(redis_server):
    """redis-py 8's pubsub thread stop() waits for the thread, which RQ lets
    sleep 60 s: every worker's exit, and every burst, would wait that long.
    (A generous deadline for a hang, not a measurement.)"""
    worker = workers.ConsoleWorker(["default"], connection=connect.connection())
    worker.subscribe()
    leaving = threading.Thread(target=worker.unsubscribe, daemon=True)
    leaving.start()
    leaving.join(timeout=30)
    assert not leaving.is_alive(), "unsubscribing hangs"
    assert not worker.pubsub_thread.is_alive()  # it closed its connection


def _calls(command: str) -> int:
    stats = connect.connection().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_heartbeat_right_after_another_is_not_sent(monkeypatch):
    """Between two jobs RQ heartbeats three times in a row, a round trip
    each; one of the usual length will do. One with its own timeout (a long
    job's) always goes out."""
    monkeypatch.setattr(recording, "HEARTBEAT_FRESH", 60.0)  # a slow machine
    worker = workers.ConsoleWorker(["default"], connection=connect.connection())
    before = _calls("expire")
    worker.heartbeat()
    worker.heartbeat()
    assert _calls("expire") - before == 1
    worker.heartbeat(timeout=90)
    assert _calls("expire") - before == 2
    ttl = connect.connection().ttl(worker.key)
    assert 80 < ttl <= 90
