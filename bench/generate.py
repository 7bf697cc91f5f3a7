"""Many job records, fast: one prepared INSERT run (executemany) over rows
built from one template, so a million rows take seconds, not an ORM hour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from jobs.models import JobRecord

CHUNK = 50_000
#: Submission times spread over the last 30 days.
SPAN = timedelta(days=30)


def queue_names(count: int) -> list[str]:
    return ["default", *(f"queue-{n:02d}" for n in range(1, count))]


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


def _is_dead(index: int, total: int, dead: int) -> bool:
    """Exactly `dead` of `total` rows, evenly spread."""
    return (index * dead) // total != ((index + 1) * dead) // total


def _rows(
    start: int, stop: int, total: int, dead: int, queues: list[str]
) -> Iterator[list[Any]]:
    fields = list(JobRecord._meta.concrete_fields)
    names = [f.attname for f in fields]
    template = _template()
    base = [f.get_db_prep_save(f.pre_save(template, True), connection) for f in fields]
    col = {n: names.index(n) for n in names}
    adapt = connection.ops.adapt_datetimefield_value
    first, step = timezone.now() - SPAN, SPAN / total
    for i in range(start, stop):
        row = base.copy()
        moment = adapt(first + step * i)
        row[col["id"]] = f"bench-{i:09d}"
        row[col["queue"]] = queues[i % len(queues)]
        for name in ("submitted_at", "enqueued_at", "started_at", "finished_at"):
            row[col[name]] = moment
        if _is_dead(i, total, dead):
            row[col["status"]] = JobRecord.Status.DEAD.value
            row[col["attempts"]] = 3
            row[col["result"]] = None
            row[col["error_type"]] = "DemoFailure"
            row[col["last_error"]] = "demo failure"
        yield row


def job_records(total: int, dead: int, queues: list[str], offset: int = 0) -> None:
    """`total` finished records (`dead` of them dead) over `queues`; with an
    `offset`, only rows `offset` to `total` - 1 (to grow a table written
    before with a smaller `total`)."""
    fields = list(JobRecord._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(JobRecord._meta.db_table)} ({columns}) VALUES ({marks})"
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(offset, total, CHUNK):
            stop = min(total, start + CHUNK)
            cursor.executemany(sql, list(_rows(start, stop, total, dead, queues)))
