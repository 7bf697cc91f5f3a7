"""`python -m bench.screens_run --database-url URL ...`: one database's side
of figure 10, in a process of its own (Django is set up for one database per
process). Writes its measurements as JSON to --output.

The history grows step by step (the records of each step are added to the
last); at each step every screen is requested through Django's test client
as a logged-in superuser. Then the dead jobs of one failure group are retried
through the console's "Retry all", as an operator would.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.backend import connect

#: (name, path, text every answer must contain); the search terms match a
#: few hundred jobs in a million (bench.generate's payloads and errors).
SCREENS = (
    ("overview", "/", "queue-09"),
    ("job list", "/jobs/", "bench-"),
    ("search payload", "/jobs/?payload=customer-1234%40", "customer-1234@"),
    ("search error", "/jobs/?error=db-43%3A5432", "bench-"),
    ("failures", "/failures/", "failure-group"),
)
WARMUP = 3


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.screens_run")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--steps", required=True, help="e.g. 10000,100000")
    parser.add_argument("--dead-share", type=float, default=0.1)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> None:
    """Settings come from the environment: set it before Django reads it
    (JOB_QUEUES is given by the parent)."""
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    os.environ["ALLOWED_HOSTS"] = "testserver"  # Django's test client
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ["PROCESS_NAME"] = "bench-screens"
    import django
    from django.core.management import call_command

    from bench import environment

    django.setup()
    environment.log_to_file(args.log)
    environment.quiet_rq()
    call_command("migrate", verbosity=0)


def settle() -> None:
    """PostgreSQL: what autovacuum does after a bulk load (statistics and the
    visibility map), so plans are those of a server in steady state."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _timed_get(client: Any, path: str, marker: str, sql: list[float]) -> float:
    from django.db import connection

    from bench.metrics_time import SqlClock

    clock = SqlClock()
    start = time.perf_counter()
    with connection.execute_wrapper(clock):
        response = client.get(path)
    took = (time.perf_counter() - start) * 1000
    if response.status_code != 200 or marker not in response.content.decode():
        raise RuntimeError(
            f"GET {path} answered {response.status_code} without {marker!r}"
        )
    sql.append(clock.seconds * 1000)
    return took


def screens(client: Any, requests: int) -> dict[str, dict[str, list[float]]]:
    """Every screen's request times and SQL times (ms), warm-ups left out."""
    found: dict[str, dict[str, list[float]]] = {}
    for name, path, marker in SCREENS:
        ignored: list[float] = []
        for _ in range(WARMUP):
            _timed_get(client, path, marker, ignored)
        sql: list[float] = []
        times = [_timed_get(client, path, marker, sql) for _ in range(requests)]
        found[name] = {"times": times, "sql": sql}
    return found


def _fill_failed_registry(jobs: list[tuple[str, str]]) -> None:
    """Give the group's (id, queue) jobs their Redis side, as dead jobs have
    it: a job hash in its queue's failed registry (the retry must clear it)."""
    from rq.job import JobStatus
    from rq.registry import FailedJobRegistry

    from jobs.backend import queueing

    client = connect.connection()
    for start in range(0, len(jobs), 1000):
        with client.pipeline() as pipe:
            for job_id, queue in jobs[start : start + 1000]:
                job = queueing.ConsoleJob.create(
                    queueing.RUNNER,
                    kwargs={"task": "demo.fail", "payload": {}},
                    id=job_id,
                    connection=client,
                    origin=queue,
                    status=JobStatus.FAILED,
                )
                job.save(pipeline=pipe)
                FailedJobRegistry(queue, connection=client).add(
                    job, ttl=3600, pipeline=pipe
                )
            pipe.execute()


def _peak_rss_growth(action: Callable[[], Any]) -> float:
    """MB the process's peak RSS rose above its RSS before `action`."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to VmRSS
    before = _status_kb("VmRSS")
    action()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def retry_group(client: Any, number: int) -> dict[str, Any]:
    """POST "Retry all" of failure group `number`; checks every job moved."""
    from bench import generate
    from jobs.backend import queueing
    from jobs.models import JobRecord

    fingerprint = generate.group_fingerprint(number)
    task = generate.GROUPS[number][0]
    dead = JobRecord.objects.filter(
        status=JobRecord.Status.DEAD, error_fingerprint=fingerprint, task=task
    )
    jobs = list(dead.values_list("pk", "queue"))
    ids = [job_id for job_id, _ in jobs]
    _fill_failed_registry(jobs)

    def post() -> None:
        # Confirmed as an operator does it: the count the page stated.
        confirmed = {"task": task, "confirm": "yes", "expected": str(len(ids))}
        response = client.post(f"/failures/{fingerprint}/retry/", confirmed)
        if response.status_code != 302:
            raise RuntimeError(f"retry answered {response.status_code}")

    start = time.perf_counter()
    rss = _peak_rss_growth(post)
    seconds = time.perf_counter() - start
    pending = JobRecord.objects.filter(
        pk__in=ids, status=JobRecord.Status.PENDING
    ).count()
    waiting = sum(status == "queued" for status in queueing.statuses(ids).values())
    return {
        "jobs": len(ids),
        "seconds": seconds,
        "rss_mb": rss,
        "retried": pending,
        "queued_in_redis": waiting,
    }


def retry_memory(client: Any, number: int) -> dict[str, Any]:
    """The same action on another group, with tracemalloc on (slower: its
    time is not the figure): the peak of Python allocations."""
    tracemalloc.start()
    try:
        found = retry_group(client, number)
        found["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from bench import generate
    from bench.reset import reset

    reset()
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    queues = list(settings.JOB_QUEUES)
    steps = [int(n) for n in args.steps.split(",")]
    done, by_step = 0, []
    for total in steps:
        start = time.perf_counter()
        generate.job_records(total, round(total * args.dead_share), queues, done)
        settle()
        written = time.perf_counter() - start
        # Earlier steps only draw the chart: fewer requests.
        requests = args.requests if total == steps[-1] else args.requests // 3
        found = screens(client, requests)
        by_step.append({"records": total, "written_s": written, "screens": found})
        done = total
    return {
        "vendor": connection.vendor,
        "version": _version(),
        "steps": by_step,
        "retry": retry_group(client, 0),
        "retry_memory": retry_memory(client, 1),
    }


def _version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    setup(args)
    with warnings.catch_warnings():
        # WhiteNoise warns once that STATIC_ROOT was never collected: harmless.
        warnings.filterwarnings("ignore", message="No directory at")
        found = measure(args)
    args.output.write_text(json.dumps(found), encoding="utf-8")


if __name__ == "__main__":
    main()
