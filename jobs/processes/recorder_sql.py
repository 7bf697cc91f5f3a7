"""The recorder's SQL: the fields it reads and writes, and the prepared
SELECT and INSERT statements it sends for a batch (built once per vendor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from jobs.dbvalues import columns
from jobs.models import JobRecord

BATCH = 500

RECORD_FIELDS = [
    "status",
    "attempts",
    "max_attempts",
    "enqueued_at",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "worker_name",
    "worker_pid",
    "result",
    "error_type",
    "last_error",
    "error_fingerprint",
]
STARTED_FIELDS = ["worker_name", "hostname", "pid", "started_at"]
FINISHED_FIELDS = [
    "worker_name",
    "hostname",
    "started_at",
    "finished_at",
    "duration",
    "outcome",
    "exc_type",
    "exc_message",
    "traceback",
]


#: What the handlers read and `save_moved` writes of a record, nothing more.
LOADED = [
    f
    for f in JobRecord._meta.concrete_fields
    if f.name in {"id", "task", *RECORD_FIELDS}
]


def _db() -> BaseDatabaseWrapper:
    """The connection itself: `django.db.connection` is a proxy that costs a
    context-local lookup at every attribute, thousands of times a batch."""
    return connections[DEFAULT_DB_ALIAS]


#: SQL text built once per database vendor and statement.
_STATEMENTS: dict[tuple[str, ...], str] = {}


def column_of(field: Any) -> str:
    """A concrete field's column (Django's stubs allow None: not for these)."""
    column = field.column
    assert column is not None, field
    return str(column)


def _statement(
    connection: BaseDatabaseWrapper,
    key: tuple[str, ...],
    build: Callable[[Callable[[str], str]], str],
) -> str:
    full = (connection.vendor, *key)
    found = _STATEMENTS.get(full)
    if found is None:
        found = _STATEMENTS[full] = build(connection.ops.quote_name)
    return found


def load_records(
    connection: BaseDatabaseWrapper, ids: set[str]
) -> dict[str, JobRecord]:
    """The records of a batch by id, only the fields the handlers use, in one
    prepared SELECT (`in_bulk` compiled the query anew for every batch)."""
    found: dict[str, JobRecord] = {}
    ordered = sorted(ids)
    if not ordered:
        return found
    table = JobRecord._meta.db_table
    select = _statement(
        connection,
        ("select",),
        lambda quote: (
            f"SELECT {', '.join(quote(column_of(f)) for f in LOADED)} "
            f"FROM {quote(table)} WHERE {quote('id')} IN "
        ),
    )
    # What the ORM applies to each column read (the backend's, the field's).
    converters = []
    for index, loaded in enumerate(LOADED):
        col = loaded.get_col(table)
        functions = connection.ops.get_db_converters(col) + col.get_db_converters(
            connection
        )
        if functions:
            converters.append((index, functions, col))
    names = [f.attname for f in LOADED]
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), BATCH):
            chunk = ordered[start : start + BATCH]
            cursor.execute(f"{select}({', '.join(['%s'] * len(chunk))})", chunk)
            for row in cursor.fetchall():
                values = list(row)
                for index, functions, col in converters:
                    for convert in functions:
                        values[index] = convert(values[index], col, connection)
                record = JobRecord.from_db(connection.alias, names, values)
                found[record.pk] = record
    return found


def insert_many(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    rows: list[Any],
    unique: list[str] | None = None,
    update: list[str] | None = None,
) -> None:
    """INSERT rows in one prepared statement (executemany): on a conflict
    with `unique`, set the `update` fields; without them, keep the row there.
    What `bulk_create` sends, without compiling it anew for every batch.
    The rows are read by attribute (no field of these models is auto_now)."""
    if not rows:
        return
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]

    def build(quote: Callable[[str], str]) -> str:
        column = {f.name: quote(column_of(f)) for f in fields}
        if unique and update:
            targets = ", ".join(column[name] for name in unique)
            sets = ", ".join(f"{column[n]} = EXCLUDED.{column[n]}" for n in update)
            conflict = f"ON CONFLICT ({targets}) DO UPDATE SET {sets}"
        else:
            conflict = "ON CONFLICT DO NOTHING"
        return (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(column.values())}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) {conflict}"
        )

    sql = _statement(
        connection, ("insert", meta.label, *(unique or ()), "|", *(update or ())), build
    )
    prepared = columns(fields, connection)
    params = [[prep(getattr(row, name)) for name, prep in prepared] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
