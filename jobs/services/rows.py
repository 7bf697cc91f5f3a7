"""Writing many job records at once, fast: one prepared INSERT for all rows.

bulk_create compiles a statement per ~35 rows on SQLite and prepares every
field of every row through the field's whole conversion chain; here a value
that repeats from the previous row (the task, queue, policy and submission
time of a bulk) is converted once, and plain strings and integers not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, models

from jobs import textindex
from jobs.models import JobRecord

_UNSET = object()
#: From this many rows, the text index is built in one statement at the end
#: (jobs.textindex.indexed_at_end) rather than by its trigger row by row.
INDEX_AT_END_FROM = 20


def _converter(field: Any) -> Callable[[Any], Any]:
    """The field's conversion to a database value, skipping Django's chain
    where it is the identity: None is NULL for every field, a str is itself
    for text fields and an int for integer fields."""
    passes: type | None = None
    if isinstance(field, models.CharField | models.TextField):
        passes = str
    elif isinstance(field, models.IntegerField):
        passes = int

    def convert(value: Any) -> Any:
        if value is None or type(value) is passes:
            return value
        return field.get_db_prep_save(value, connection)

    return convert


def insert_records(records: list[JobRecord]) -> None:
    """One prepared INSERT run for every record (executemany); must run in a
    transaction (job_submit_many's).

    bulk_create compiles a statement per ~35 rows on SQLite and prepares
    every field of every row through the field's full conversion chain; here
    a field's value that repeats from the previous row (the task, queue,
    policy, submission time... of a bulk) is converted once.
    """
    fields: list[Any] = list(JobRecord._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(JobRecord._meta.db_table)} ({columns}) VALUES ({marks})"
    convert = [_converter(f) for f in fields]
    last: list[Any] = [_UNSET] * len(fields)
    prepared: list[Any] = [None] * len(fields)
    rows = []
    for record in records:
        for i, f in enumerate(fields):
            value = f.pre_save(record, True)
            before = last[i]
            if value is not before and not (
                type(value) is type(before) and value == before
            ):
                last[i] = value
                prepared[i] = convert[i](value)
        rows.append(list(prepared))
    with connection.cursor() as cursor:
        if len(rows) < INDEX_AT_END_FROM:
            cursor.executemany(sql, rows)
        else:
            with textindex.indexed_at_end(connection):
                cursor.executemany(sql, rows)
    for record in records:
        record._state.adding = False
