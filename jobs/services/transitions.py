"""A job record's status has one owner: this module.

It says which moves are allowed (from -> to), which statuses each operator
action applies to, and holds the only code that writes a status: `move` (a
set of records to one status) and `save_moved` (the recorder's batch, each row
to its own status). Both write with a conditional UPDATE (`... WHERE status IN
<the statuses allowed to move there>`), so a writer that read a status a
moment ago can never drag a record backwards over a newer one: a refused move
leaves the row untouched. Submit, validation, control, reconcile and the
recorder all come here; nothing else sets `status`.

Repairs (reconcile) are the one exception to the graph: they take Redis's word
for any job that has not succeeded (`move(..., repair=True)`). An operator's
cancel of a running job is the other (`move(..., stop=True)`): started ->
canceled is in no event's reach, so the recorder can never take that path.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections

from jobs.dbvalues import columns
from jobs.models import JobRecord

Status = JobRecord.Status

#: Where every job starts: written, not yet in Redis (the outbox).
INITIAL = Status.PENDING
ALL: frozenset[str] = frozenset(Status.values)
FINAL: frozenset[str] = frozenset(JobRecord.FINAL_STATUSES)
UNFINISHED: frozenset[str] = ALL - FINAL
#: Not running yet, and not finished: what a cancel can still stop.
WAITING: frozenset[str] = UNFINISHED - {Status.STARTED}
#: What a worker's run leads to, from any status that is not final.
_RUN = frozenset({Status.STARTED, Status.SUCCEEDED, Status.RETRYING, Status.DEAD})

#: Every move the lifecycle allows: from -> the statuses it may go to. A
#: record may always be written again with the status it has (a replayed
#: event, another field changing), so a status does not list itself.
TRANSITIONS: dict[str, frozenset[str]] = {
    # The outbox: into Redis (queued, at a time, after parents), or run.
    Status.PENDING: frozenset(
        {Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.CANCELED} | _RUN
    ),
    # Waiting in Redis: run, canceled, or back to the outbox when Redis lost
    # the job (reconcile's re-enqueue).
    Status.QUEUED: _RUN | {Status.CANCELED, Status.PENDING},
    Status.SCHEDULED: _RUN | {Status.QUEUED, Status.CANCELED, Status.PENDING},
    Status.DEFERRED: _RUN | {Status.QUEUED, Status.CANCELED, Status.PENDING},
    Status.RETRYING: _RUN | {Status.QUEUED, Status.CANCELED, Status.PENDING},
    # Running: an outcome, or back to the outbox when Redis lost it.
    Status.STARTED: frozenset(
        {Status.SUCCEEDED, Status.RETRYING, Status.DEAD, Status.PENDING}
    ),
    # Final: only an operator's retry takes a dead or canceled job back.
    Status.SUCCEEDED: frozenset(),
    Status.DEAD: frozenset({Status.PENDING}),
    Status.CANCELED: frozenset({Status.PENDING}),
}

#: Moves only an operator's cancel makes (`move(..., stop=True)`), after the
#: backend claimed the running job (jobs.backend.queueing.stop_running).
STOPS: dict[str, frozenset[str]] = {Status.STARTED: frozenset({Status.CANCELED})}

# The statuses each operator action applies to; every front door (console,
# admin, API, CLI) and the job page's buttons read these.
RETRYABLE: frozenset[str] = frozenset({Status.DEAD, Status.CANCELED})
#: Waiting jobs are taken out of Redis; a running one is stopped (issue 19).
CANCELABLE: frozenset[str] = WAITING | {Status.STARTED}
#: A running job is never deleted: its worker would write its end to nothing.
DELETABLE: frozenset[str] = ALL - {Status.STARTED}
#: Waiting for a time (delayed, or a retry's back-off): can be run at once.
RUNNABLE_NOW: frozenset[str] = frozenset({Status.SCHEDULED, Status.RETRYING})
#: Reconcile takes Redis's word for these; a success is never undone.
REPAIRABLE: frozenset[str] = ALL - {Status.SUCCEEDED}

#: Ids per UPDATE statement (SQLite's default limit is 999 parameters).
CHUNK = 900


def allowed(current: str, new: str) -> bool:
    """May a record in `current` be written with status `new`?"""
    return new == current or new in TRANSITIONS.get(current, frozenset())


def sources(new: str, *, stop: bool = False) -> frozenset[str]:
    """Every status a record may be in to be written with `new` (with an
    operator's stop of a running job: STOPS too)."""
    found = frozenset(s for s in ALL if allowed(s, new))
    if stop:
        found |= {s for s, to in STOPS.items() if new in to}
    return found


def step(record: JobRecord, new: str) -> bool:
    """Move a record in memory (the recorder's batch, written later by
    `save_moved`); False, and the record untouched, if the move is refused."""
    if not allowed(record.status, new):
        return False
    record.status = new
    return True


def move(
    ids: Iterable[str],
    new: str,
    *,
    among: Collection[str] = ALL,
    repair: bool = False,
    stop: bool = False,
    **changes: Any,
) -> set[str]:
    """Set `new` (and `changes`) on those of `ids` whose status allows it now
    and is one of `among` (the action's statuses); returns the ids moved.

    One conditional UPDATE per chunk of ids, decided by the database at write
    time, so it is safe against any concurrent writer. `repair=True` is
    reconcile's: any status in `among` but a success may move anywhere.
    `stop=True` is an operator's cancel of a running job: STOPS apply too.
    """
    froms = set(among) & (REPAIRABLE if repair else sources(new, stop=stop))
    ids = list(dict.fromkeys(ids))
    if not froms or not ids:
        return set()
    values = {"status": new, **changes}
    fields: list[Any] = [JobRecord._meta.get_field(name) for name in values]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    prepared = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    allowed_froms = sorted(froms)
    moved: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), CHUNK):
            # Sorted: every writer takes row locks in id order (no deadlock).
            chunk = sorted(ids[start : start + CHUNK])
            cursor.execute(
                f"UPDATE {quote(JobRecord._meta.db_table)} SET {assignments} "
                f"WHERE {quote('status')} IN ({_marks(allowed_froms)}) "
                f"AND {quote('id')} IN ({_marks(chunk)}) RETURNING {quote('id')}",
                [*prepared, *allowed_froms, *chunk],
            )
            moved.update(row[0] for row in cursor.fetchall())
    return moved


def save_moved(rows: Sequence[JobRecord], field_names: Sequence[str]) -> None:
    """Write records already moved by `step` (each to its own status), each
    only if the status the database holds now may still go to it: a record
    another writer moved meanwhile beyond reach is left as that writer left
    it. One prepared UPDATE per status, run for every row (executemany):
    bulk_update's CASE WHEN per field was most of the recorder's time."""
    if not rows:
        return
    fields: list[Any] = [JobRecord._meta.get_field(name) for name in field_names]
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: one lookup, not one a value
    quote = db.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    by_status: dict[str, list[JobRecord]] = {}
    for row in sorted(rows, key=lambda r: r.pk):  # id order: no deadlock
        by_status.setdefault(row.status, []).append(row)
    prepared = columns(fields, db)
    with db.cursor() as cursor:
        for new, group in by_status.items():
            froms = sorted(sources(new))
            cursor.executemany(
                f"UPDATE {quote(JobRecord._meta.db_table)} SET {assignments} "
                f"WHERE {quote('id')} = %s "
                f"AND {quote('status')} IN ({_marks(froms)})",
                [
                    [prepare(getattr(row, name)) for name, prepare in prepared]
                    + [row.pk, *froms]
                    for row in group
                ],
            )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))
