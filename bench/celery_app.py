"""Celery with its Redis broker, as a project without the console would use
it: the second baseline, on the bench's own Redis server.

Broker and results each get a database number of their own on that server,
so a drain can count finished tasks with one DBSIZE. The worker processes
import this module (`celery -A bench.celery_app worker`) and get both URLs
from the environment (CELERY_BROKER_URL, CELERY_RESULT_BACKEND); nothing
here touches Django, and the Django fix-up is off, so a Celery worker never
loads the console.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery, group

from bench.noop import cpu as _cpu
from bench.noop import noop as _noop
from bench.noop import sleep as _sleep

BROKER_DB = 1
RESULTS_DB = 2
#: Celery's default queue: the list its workers pop from.
QUEUE = "celery"
#: Where a drain's tasks wait, untimed, until one RENAME hands them over.
FILL = "bench-fill"
#: As long as RQ keeps a finished job's result by default (result_ttl).
RESULT_SECONDS = 500

app = Celery("bench", set_as_current=False, fixups=[])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=RESULT_SECONDS,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
#: The same function plain RQ runs.
noop = app.task(name="bench.noop")(_noop)
#: The slots figure's job (demo.sleep's counterpart).
sleep = app.task(name="bench.sleep")(_sleep)
#: The CPU figure's job (demo.cpu's counterpart).
cpu = app.task(name="bench.cpu")(_cpu)


def urls(redis_url: str) -> dict[str, str]:
    """The environment of a worker: broker and results on `redis_url`'s
    server, each in its own database."""
    parts = urlsplit(redis_url)

    def on(db: int) -> str:
        return urlunsplit(parts._replace(path=f"/{db}"))

    return {"CELERY_BROKER_URL": on(BROKER_DB), "CELERY_RESULT_BACKEND": on(RESULTS_DB)}


def configure(redis_url: str) -> None:
    """Point the bench process's app at `redis_url`'s server."""
    found = urls(redis_url)
    app.conf.update(
        broker_url=found["CELERY_BROKER_URL"],
        result_backend=found["CELERY_RESULT_BACKEND"],
    )


def submit(text: str) -> None:
    """One apply_async; nobody waits for the result (see `figures.NOTES`)."""
    noop.apply_async(kwargs={"text": text}, ignore_result=True)


def submit_batch(texts: Sequence[str]) -> None:
    """Many apply_async calls through one producer in one kombu publish batch:
    the LPUSHes go out in pipelines (kombu >= 5.7), as RQ's enqueue_many."""
    with app.producer_or_acquire() as producer, producer.batch():
        for text in texts:
            noop.apply_async(
                kwargs={"text": text}, ignore_result=True, producer=producer
            )


def submit_group(texts: Sequence[str]) -> None:
    """Celery's canvas for many tasks: one group, one producer, one LPUSH each."""
    group(noop.s(text=t) for t in texts).apply_async(ignore_result=True)


def fill(count: int, task: Any = None, kwargs: dict[str, Any] | None = None) -> None:
    """`count` tasks (results kept) into a list no worker reads: no-ops, or
    `task` with `kwargs`."""
    with app.producer_or_acquire() as producer:
        for i in range(count):
            (task or noop).apply_async(
                kwargs={"text": str(i)} if kwargs is None else kwargs,
                queue=FILL,
                producer=producer,
            )


def release() -> None:
    """Every filled task into the workers' queue at once (one command)."""
    _broker().rename(FILL, QUEUE)


def finished() -> int:
    """Tasks whose result is stored, success or failure."""
    return int(_results().dbsize())


def succeeded() -> int:
    client = _results()
    keys = list(client.scan_iter("celery-task-meta-*", count=1000))
    values = client.mget(keys) if keys else []
    return sum(1 for v in values if v is not None and b'"SUCCESS"' in v)


def node_name(name: str) -> str:
    """A worker's node name, as `-n NAME@%h` makes it."""
    return f"{name}@{socket.gethostname()}"


def wait_ready(
    names: list[str], check: Callable[[], None], timeout: float = 120.0
) -> float:
    """Seconds until every named worker answers a ping (`check` raises if a
    worker process died meanwhile)."""
    start = time.monotonic()
    wanted = {node_name(n) for n in names}
    while time.monotonic() - start < timeout:
        check()
        replies = app.control.ping(timeout=0.5, limit=len(wanted))
        if wanted <= {name for reply in replies for name in reply}:
            return time.monotonic() - start
    raise TimeoutError(f"celery workers {sorted(wanted)} not ready after {timeout:g} s")


def _broker() -> Any:
    return redis.Redis.from_url(app.conf.broker_url)


def _results() -> Any:
    return app.backend.client
