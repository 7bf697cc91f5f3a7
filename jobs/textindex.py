"""The index behind "payload has" and "error has": case-insensitive substring
search over a job's payload and last error without reading every row.

- SQLite: an FTS5 table with the trigram tokenizer over jobs_jobrecord
  (external content: it stores only the index), kept in step by triggers, so
  every writer is covered, raw executemany inserts included. A term of three
  characters or more is a phrase of trigrams, which is exactly a substring
  (case folded); shorter terms have no trigram and are scanned.
- PostgreSQL: pg_trgm GIN indexes on the very expressions Django's icontains
  compares (UPPER(column::text)), so the planner serves it from the index.

Migration 0007 installs it; `repair` runs after every migrate, because on
SQLite Django rebuilds a table to alter it and the triggers go with the old
table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "jobs_jobrecord"
FTS = "jobs_jobrecord_text"
COLUMNS = ("payload", "last_error")
#: The shortest term the trigram index can answer.
MIN_INDEXED = 3

_COLS = ", ".join(COLUMNS)
_NEW = ", ".join(f"new.{c}" for c in COLUMNS)
_OLD = ", ".join(f"old.{c}" for c in COLUMNS)
_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in COLUMNS)
_ADD = f"INSERT INTO {FTS}(rowid, {_COLS}) VALUES (new.rowid, {_NEW});"
_DROP = (
    f"INSERT INTO {FTS}({FTS}, rowid, {_COLS}) VALUES ('delete', old.rowid, {_OLD});"
)
SQLITE_TABLE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5({_COLS}, "
    f"content='{TABLE}', content_rowid='rowid', tokenize='trigram')"
)
#: While it holds a row, the insert trigger stands aside: a bulk insert then
#: indexes all its rows with one statement (see `indexed_at_end`).
PAUSE = "jobs_jobrecord_text_pause"
SQLITE_PAUSE = f"CREATE TABLE IF NOT EXISTS {PAUSE} (paused INTEGER NOT NULL)"
#: name -> CREATE TRIGGER; an update re-indexes a row only if its text changed.
SQLITE_TRIGGERS = {
    f"{FTS}_insert": (
        f"AFTER INSERT ON {TABLE} WHEN NOT EXISTS (SELECT 1 FROM {PAUSE}) "
        f"BEGIN {_ADD} END"
    ),
    f"{FTS}_delete": f"AFTER DELETE ON {TABLE} BEGIN {_DROP} END",
    f"{FTS}_update": (
        f"AFTER UPDATE OF {_COLS} ON {TABLE} WHEN {_CHANGED} BEGIN {_DROP} {_ADD} END"
    ),
}
#: Built CONCURRENTLY: writers go on while a large history is indexed.
POSTGRES_INDEXES = {
    f"{TABLE}_{column}_trgm": (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TABLE}_{column}_trgm ON {TABLE} "
        f"USING gin ((UPPER(({column})::text)) gin_trgm_ops)"
    )
    for column in COLUMNS
}


def install(connection: BaseDatabaseWrapper) -> None:
    """Create the index and fill it from the rows already there. On
    PostgreSQL it must run outside a transaction (CREATE INDEX CONCURRENTLY)."""
    if connection.vendor == "sqlite":
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(SQLITE_TABLE)
            _create_triggers(cursor)
            cursor.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            for sql in POSTGRES_INDEXES.values():
                cursor.execute(sql)


def remove(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name in SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(f"DROP TABLE IF EXISTS {FTS}")
            cursor.execute(f"DROP TABLE IF EXISTS {PAUSE}")
        elif connection.vendor == "postgresql":
            for name in POSTGRES_INDEXES:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def _create_triggers(cursor: Any) -> None:
    cursor.execute(SQLITE_PAUSE)
    for name, body in SQLITE_TRIGGERS.items():
        cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def pausable_insert_trigger(connection: BaseDatabaseWrapper) -> None:
    """Migration 0009: the insert trigger of 0008, made to stand aside while a
    bulk insert holds the pause row."""
    if connection.vendor != "sqlite":
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(SQLITE_PAUSE)
        cursor.execute(f"DROP TRIGGER IF EXISTS {FTS}_insert")
        _create_triggers(cursor)


@contextmanager
def indexed_at_end(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Rows inserted in the block are indexed by one statement at its end.

    On SQLite the per-row trigger costs about 40 µs a row, an FTS5 statement
    each, ten times the rest of the insert; one INSERT ... SELECT over the new
    rowids costs a tenth of that. It must run in a transaction: SQLite's one
    writer then keeps every other connection from inserting meanwhile, and a
    rollback takes the pause row back with the rows."""
    if connection.vendor != "sqlite":
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("indexed_at_end needs a transaction")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {TABLE}")
        (before,) = cursor.fetchone()
        cursor.execute(f"INSERT INTO {PAUSE} (paused) VALUES (1)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {PAUSE}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FTS} (rowid, {_COLS}) "
            f"SELECT rowid, {_COLS} FROM {TABLE} WHERE rowid > %s",
            [before],
        )


def repair(connection: BaseDatabaseWrapper) -> bool:
    """On SQLite, if the index exists but a trigger is missing (its table was
    rebuilt by a migration), restore the triggers and re-index every row.
    Returns whether it had to."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, name FROM sqlite_master WHERE name = %s OR "
            "(type = 'trigger' AND tbl_name = %s)",
            [FTS, TABLE],
        )
        found = {name for _, name in cursor.fetchall()}
        if FTS not in found or set(SQLITE_TRIGGERS) <= found:
            return False
        _create_triggers(cursor)
        cursor.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")
    return True


def match_query(column: str, term: str) -> str:
    """An FTS5 query for `term` anywhere in `column`: one quoted phrase (a
    double quote inside is doubled; nothing else is special in a phrase)."""
    if column not in COLUMNS:
        raise ValueError(f"{column!r} is not indexed")
    phrase = term.replace('"', '""')
    return f'{{{column}}} : "{phrase}"'


def rowids(
    connection: BaseDatabaseWrapper, column: str, term: str, *, limit: int
) -> list[int] | None:
    """SQLite: the rowids of rows whose `column` contains `term`, or None when
    more than `limit` do (the index stops reading there)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT rowid FROM {FTS} WHERE {FTS} MATCH %s LIMIT %s",
            [match_query(column, term), limit + 1],
        )
        found = [row[0] for row in cursor.fetchall()]
    return found if len(found) <= limit else None


def is_indexed(connection: BaseDatabaseWrapper, term: str) -> bool:
    """Can the index answer this term on this database?"""
    return connection.vendor in ("sqlite", "postgresql") and len(term) >= MIN_INDEXED
