"""Many job records, fast: one prepared INSERT run (executemany) over rows
built from one template, so a million rows take seconds, not an ORM hour.

The rows vary as a real history does: payloads name one of CUSTOMERS
customers, and dead jobs fail in one of the GROUPS (task, exception, message
with numbers in it), each with its failed attempt, so the console's search
and failure groups have something realistic to work through.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from jobs import textindex
from jobs.models import Attempt, JobRecord
from jobs.processes.monitor import checkpoint_sqlite
from jobs.processes.recorder_handlers import fingerprint

CHUNK = 50_000
#: Submission times spread over the last 30 days.
SPAN = timedelta(days=30)
CUSTOMERS = 5_000
#: How dead jobs fail: (task, exception type, message with {n} for numbers).
GROUPS = (
    ("demo.fail", "DemoFailure", "demo failure {n}"),
    ("demo.fail", "TimeoutError", "timed out after {n} s talking to billing-{n}"),
    ("demo.echo", "ValueError", "invalid order id {n}"),
    ("demo.sleep", "ConnectionError", "connection refused by db-{n}:5432"),
    ("demo.cpu", "MemoryError", "out of memory after {n} MB"),
    ("demo.progress", "KeyError", "'step {n}' missing from the plan"),
    ("demo.echo", "PermissionError", "account {n} is locked"),
    ("demo.sleep", "OSError", "disk full writing /var/spool/{n}.tmp"),
    ("demo.cpu", "RuntimeError", "worker pool exhausted after {n} tries"),
    ("demo.fail", "ZeroDivisionError", "division by zero in invoice {n}"),
)


def queue_names(count: int) -> list[str]:
    return ["default", *(f"queue-{n:02d}" for n in range(1, count))]


def payload(index: int) -> dict[str, str]:
    """Job `index`'s payload: an order of one of CUSTOMERS customers."""
    return {"text": f"order {index} for customer-{index % CUSTOMERS}@example.com"}


def group_of(dead_index: int) -> tuple[str, str, str]:
    return GROUPS[dead_index % len(GROUPS)]


def error_of(dead_index: int) -> str:
    """The message of the `dead_index`-th dead job (numbers vary by job)."""
    return group_of(dead_index)[2].format(n=dead_index % 1000)


def group_fingerprint(number: int) -> str:
    task, error_type, message = GROUPS[number]
    return fingerprint(task, error_type, message.format(n=0))


def _template() -> JobRecord:
    now = timezone.now()
    return JobRecord(
        id="template",
        task="demo.echo",
        queue="default",
        payload={"text": "x"},
        status=JobRecord.Status.SUCCEEDED,
        attempts=1,
        max_attempts=3,
        submitted_at=now,
        enqueued_at=now,
        started_at=now,
        finished_at=now,
        worker_name="bench.1.abcd",
        result={"text": "x"},
    )


def _dead_before(index: int, total: int, dead: int) -> int:
    """How many of the rows before `index` are dead (evenly spread)."""
    return (index * dead) // total


def _is_dead(index: int, total: int, dead: int) -> bool:
    """Exactly `dead` of `total` rows, evenly spread."""
    return _dead_before(index, total, dead) != _dead_before(index + 1, total, dead)


def _prepared(model_fields: Sequence[models.Field[Any, Any]], template: Any) -> list:
    return [
        f.get_db_prep_save(f.pre_save(template, True), connection) for f in model_fields
    ]


def _fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The columns written: all but an automatic primary key."""
    return [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField))
    ]


def _insert_sql(model: type[models.Model]) -> str:
    fields = _fields(model)
    quote = connection.ops.quote_name
    # Django 6's stubs allow a None column; a concrete field always has one.
    columns = ", ".join(quote(str(f.column)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"


def _moment(index: int, total: int) -> datetime:
    return timezone.now() - SPAN + SPAN * index / total


def _rows(
    start: int, stop: int, total: int, dead: int, queues: list[str]
) -> Iterator[list[Any]]:
    fields = _fields(JobRecord)
    names = [f.attname for f in fields]
    base = _prepared(fields, _template())
    col = {n: names.index(n) for n in names}
    adapt = connection.ops.adapt_datetimefield_value
    prep_json = JobRecord._meta.get_field("payload").get_db_prep_save
    fingerprints = [group_fingerprint(n) for n in range(len(GROUPS))]
    first, step = timezone.now() - SPAN, SPAN / total
    for i in range(start, stop):
        row = base.copy()
        moment = adapt(first + step * i)
        row[col["id"]] = f"bench-{i:09d}"
        row[col["queue"]] = queues[i % len(queues)]
        row[col["payload"]] = prep_json(payload(i), connection)
        for name in ("submitted_at", "enqueued_at", "started_at", "finished_at"):
            row[col[name]] = moment
        if _is_dead(i, total, dead):
            number = _dead_before(i, total, dead)
            task, error_type, _ = group_of(number)
            row[col["task"]] = task
            row[col["status"]] = JobRecord.Status.DEAD.value
            row[col["attempts"]] = 3
            row[col["result"]] = None
            row[col["error_type"]] = error_type
            row[col["last_error"]] = error_of(number)
            row[col["error_fingerprint"]] = fingerprints[number % len(GROUPS)]
        yield row


def _attempt_rows(start: int, stop: int, total: int, dead: int) -> Iterator[list[Any]]:
    """The last (failed) attempt of each dead job in [start, stop)."""
    fields = _fields(Attempt)
    names = [f.attname for f in fields]
    col = {n: names.index(n) for n in names}
    template = Attempt(
        job_id="template",
        number=3,
        worker_name="bench.1.abcd",
        hostname="bench",
        pid=1,
        duration=0.01,
        outcome=Attempt.Outcome.FAILED,
    )
    base = _prepared(fields, template)
    adapt = connection.ops.adapt_datetimefield_value
    for i in range(start, stop):
        if not _is_dead(i, total, dead):
            continue
        number = _dead_before(i, total, dead)
        error_type, message = group_of(number)[1], error_of(number)
        row = base.copy()
        row[col["job_id"]] = f"bench-{i:09d}"
        row[col["started_at"]] = row[col["finished_at"]] = adapt(_moment(i, total))
        row[col["exc_type"]] = error_type
        row[col["exc_message"]] = message
        row[col["traceback"]] = (
            "Traceback (most recent call last):\n"
            '  File "jobs/runner.py", line 42, in run\n'
            f"{error_type}: {message}"
        )
        yield row


def job_records(total: int, dead: int, queues: list[str], start: int = 0) -> None:
    """Rows `start` to `total` of a history of `total` finished records, `dead`
    of them dead with their failed attempt, over `queues`. A history grows by
    calling again with a larger total and `start` = the rows already there."""
    attempt_sql = _insert_sql(Attempt)
    with (
        transaction.atomic(),
        textindex.indexed_at_end(connection),
        connection.cursor() as cursor,
    ):
        for first in range(start, total, CHUNK):
            stop = min(total, first + CHUNK)
            cursor.executemany(
                _insert_sql(JobRecord), list(_rows(first, stop, total, dead, queues))
            )
            attempts = list(_attempt_rows(first, stop, total, dead))
            if attempts:
                cursor.executemany(attempt_sql, attempts)
    # The monitor folds SQLite's write-ahead log back within a second of a
    # write; the bench has no monitor running, so a million rows' log would
    # otherwise be folded in by whichever measured commit came next.
    checkpoint_sqlite()
