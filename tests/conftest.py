"""Fixtures: a real Redis-compatible server, real workers, the real recorder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from console.localredis import LocalRedis, free_port
from jobs import conf
from jobs.backend import connect
from jobs.backend.workers import ConsoleWorker
from jobs.models import JobRecord
from jobs.processes.recorder import Recorder
from tests.factories import user_in

BASE_DIR = Path(__file__).resolve().parent.parent


def _point_settings_at(url: str) -> None:
    settings.REDIS_URL = url
    for config in conf.get("RQ_QUEUES").values():
        config["URL"] = url
    os.environ["REDIS_URL"] = url
    connect._connections.clear()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """One server for the session, on a free port (never 6379), AOF on."""
    port = free_port()
    assert port != 6379
    server = LocalRedis(directory=tmp_path_factory.mktemp("redis"), port=port).start()
    _point_settings_at(server.url)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_redis(redis_server: LocalRedis) -> Iterator[None]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test stopped it and failed before restarting
    connect.connection().flushall()
    yield


@pytest.fixture
def operator_user() -> User:
    return user_in("Operators")


@pytest.fixture
def operator_client(operator_user: User) -> Client:
    """A browser logged in as a member of Operators (may act on jobs)."""
    client = Client()
    client.force_login(operator_user)
    return client


@pytest.fixture
def viewer_client() -> Client:
    """A browser logged in as a member of Viewers (read only)."""
    client = Client()
    client.force_login(user_in("Viewers"))
    return client


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(consumer="tests")


def work(queues: tuple[str, ...] = ("default",), *, scheduler: bool = True) -> None:
    """One burst of a real forking worker in this process."""
    worker = ConsoleWorker(list(queues), connection=connect.connection())
    worker.work(burst=True, with_scheduler=scheduler, logging_level="WARNING")


@pytest.fixture
def run_until(recorder: Recorder) -> Callable[..., None]:
    """Burst-work and record until `done()` holds (retries wait in RQ's
    scheduled registry, so this loops over several bursts)."""

    def run(
        done: Callable[[], bool],
        queues: tuple[str, ...] = ("default",),
        timeout: float = 60.0,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            work(queues)
            recorder.drain_all()
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached before the deadline")
            time.sleep(0.2)

    return run


def final(*records: JobRecord) -> Callable[[], bool]:
    def check() -> bool:
        return all(JobRecord.objects.get(pk=r.pk).is_final for r in records)

    return check


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DEBUG="1",
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `manage.py` subprocesses; all are stopped at the end of the test.
    Their logs go to files (a full pipe would block them), shown on failure."""
    children: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start(*args: str, **env: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{args[0]}-{len(logs)}.log"
        logs.append(log)
        with open(log, "wb") as sink:
            child = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "manage.py"), *args],
                env=subprocess_env(**env),
                cwd=BASE_DIR,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        children.append(child)
        return child

    yield start
    # The test is over: a warm shutdown gets 2 s to finish (a worker left with
    # a long job would take its whole length), then a second SIGTERM asks for
    # the cold one (RQ ends its job processes), then SIGKILL.
    for grace, stop in (
        (2, signal.SIGTERM),
        (8, signal.SIGTERM),
        (None, signal.SIGKILL),
    ):
        for child in children:
            if child.poll() is None:
                child.send_signal(stop)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=grace)
    for log in logs:
        tail = log.read_text(errors="replace")[-3000:]
        print(f"--- {log.name} ---\n{tail}")


def spawned_log_says(tmp_path: Path, name: str, text: str) -> bool:
    """Has the `spawn` fixture's log `name` (e.g. "rqworker-0") got `text`?"""
    log = tmp_path / f"{name}.log"
    return log.exists() and text in log.read_text(errors="replace")


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached before the deadline")


# -- CI guards -------------------------------------------------------------

_skipped_browser_tests: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TEST_POSTGRES") == "1":
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            raise pytest.UsageError(
                "TEST_POSTGRES=1 but DATABASE_URL is not a PostgreSQL URL"
            )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis gives every API operation's item of one test the same
    node id (`test_api_keeps_its_contract`, the operation only in its name):
    pytest-xdist hands tests out by node id, and would run one of them."""
    for item in items:
        tail = item.nodeid.rsplit("::", 1)[-1]
        if item.name != tail and item.name.startswith(f"{tail}["):
            item._nodeid = f"{item.nodeid}{item.name[len(tail) :]}"  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "browser" in report.keywords:
        _skipped_browser_tests.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI_BROWSER_REQUIRED") == "1" and _skipped_browser_tests:
        print(
            f"\nbrowser tests were skipped: {_skipped_browser_tests}", file=sys.stderr
        )
        session.exitstatus = 1


# -- real processes ----------------------------------------------------------


@pytest.fixture
def monitor() -> Iterator[Any]:
    """The monitor (recorder, outbox relay, crash recovery) in a thread of this
    process, so it shares the test database."""
    import threading

    from django.db import connections

    from jobs.processes.monitor import Monitor

    instance = Monitor()
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                try:
                    instance.tick(block_ms=100)
                except Exception as exc:  # noqa: BLE001 - a test may stop Redis
                    failures.append(exc)
                    time.sleep(0.2)
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield instance
    stop.set()
    thread.join(timeout=10)


@pytest.fixture
def workers(spawn: Callable[..., subprocess.Popen[bytes]]) -> Callable[..., Any]:
    """Start real `manage.py rqworker` processes (forking, with RQ's scheduler)."""

    def start(count: int = 1, queues: tuple[str, ...] = ("default",)) -> list[Any]:
        return [spawn("rqworker", *queues, "--with-scheduler") for _ in range(count)]

    return start


def worker_pid(worker_name: str) -> int:
    """Workers are named host.pid.suffix (the host may itself contain dots)."""
    return int(worker_name.rsplit(".", 2)[1])


def database_url_for_subprocesses() -> str:
    """A URL for the test database, so subprocesses (scheduler, monitor) can
    share it (tests that use it are transactional, so data is committed)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}"
