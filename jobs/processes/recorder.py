"""The recorder: turns the worker event stream into durable job history.

It reads the stream through a consumer group, applies a batch in one database
transaction and only then acknowledges it. A batch that fails (database down)
stays pending and is applied again later; every write is an idempotent upsert
keyed by the stream entry or the (job, attempt) pair, so a replay changes
nothing. Several monitors may run: the group shares the entries between them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from jobs import events
from jobs.backend import queueing
from jobs.backend.errors import BackendError
from jobs.models import Attempt, JobDependency, JobEvent, JobRecord, Origin
from jobs.services import transitions

log = logging.getLogger("jobs.recorder")
Status = JobRecord.Status
#: The timeline's kinds (what the job page shows), not the stream's.
Kind = JobEvent.Kind

BATCH = 500
JOB_ID_LENGTH = JobRecord._meta.get_field("id").max_length or 64
#: Entries a crashed recorder left unacknowledged are taken over after this.
CLAIM_IDLE_MS = 30_000

_NUMBERS = re.compile(r"\b(0x)?[0-9a-fA-F]*\d[0-9a-fA-F]*\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def fingerprint(task: str, exc_type: str, message: str) -> str:
    """Same task, same exception type, same message up to ids and numbers."""
    normal = _NUMBERS.sub("N", _QUOTED.sub("'…'", message.strip().split("\n")[0]))
    return hashlib.sha1(f"{task}|{exc_type}|{normal[:200]}".encode()).hexdigest()


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


@dataclass(slots=True)
class TimelineRow:
    """One JobEvent row to insert (a model instance per event cost more than
    the rest of its handling)."""

    job_id: str
    kind: str
    at: datetime
    message: str
    detail: dict[str, Any]
    stream_id: str
    actor_id: int | None = None


@dataclass
class Batch:
    """What one batch of events changes, gathered before one write."""

    records: dict[str, JobRecord]
    started: dict[tuple[str, int], Attempt] = field(default_factory=dict)
    finished: dict[tuple[str, int], Attempt] = field(default_factory=dict)
    timeline: list[TimelineRow] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    dead: list[str] = field(default_factory=list)

    def add_event(
        self,
        record: JobRecord,
        event: events.Event,
        kind: str,
        message: str = "",
        suffix: str = "",
        **detail: Any,
    ) -> None:
        self.timeline.append(
            TimelineRow(
                job_id=record.pk,
                kind=kind,
                at=_dt(event.at) or datetime.now(UTC),
                message=message,
                detail=detail,
                stream_id=f"{event.stream_id}{suffix}",
            )
        )

    def attempt(
        self,
        record: JobRecord,
        event: events.Event,
        into: dict[tuple[str, int], Attempt],
    ) -> Attempt:
        number = int(event.data.get("attempt") or 1)
        key = (record.pk, number)
        found = into.get(key) or Attempt(job_id=record.pk, number=number)
        into[key] = found
        found.worker_name = event.data.get("worker") or found.worker_name
        found.hostname = event.data.get("host") or found.hostname
        found.started_at = _dt(event.data.get("started")) or found.started_at
        return found


# Each handler moves the record through transitions.step: an event that
# arrives late (after a repair, an operator, or a replayed batch moved the
# record on) never drags it back; the attempt and timeline still say what
# the worker reported.


def on_enqueued(batch: Batch, record: JobRecord, event: events.Event) -> None:
    if transitions.step(record, Status.QUEUED):
        record.enqueued_at = _dt(event.at)
    batch.add_event(record, event, Kind.ENQUEUED)


def on_scheduled(batch: Batch, record: JobRecord, event: events.Event) -> None:
    transitions.step(record, Status.SCHEDULED)
    batch.add_event(
        record, event, Kind.SCHEDULED, f"runs at {event.data.get('run_at')}"
    )


def on_deferred(batch: Batch, record: JobRecord, event: events.Event) -> None:
    transitions.step(record, Status.DEFERRED)
    batch.add_event(record, event, Kind.DEFERRED)


def on_started(batch: Batch, record: JobRecord, event: events.Event) -> None:
    attempt = batch.attempt(record, event, batch.started)
    attempt.pid = event.data.get("pid")
    attempt.started_at = _dt(event.at)
    if transitions.step(record, Status.STARTED):
        record.started_at = _dt(event.at)
        record.attempts = max(record.attempts, attempt.number)
        record.worker_name = attempt.worker_name
        record.worker_pid = attempt.pid
        record.next_attempt_at = None
    batch.add_event(
        record,
        event,
        Kind.STARTED,
        f"attempt {attempt.number} on {attempt.worker_name}",
        attempt=attempt.number,
        worker=attempt.worker_name,
        pid=attempt.pid,
    )


def on_succeeded(batch: Batch, record: JobRecord, event: events.Event) -> None:
    attempt = _finish(batch, record, event, Attempt.Outcome.SUCCEEDED)
    if _end(record, attempt, Status.SUCCEEDED):
        record.result = event.data.get("result")
    batch.add_event(
        record,
        event,
        Kind.SUCCEEDED,
        f"attempt {attempt.number} succeeded",
        attempt=attempt.number,
        duration=attempt.duration,
    )


def on_failed(batch: Batch, record: JobRecord, event: events.Event) -> None:
    lost = event.kind == events.Kind.LOST
    outcome = Attempt.Outcome.LOST if lost else Attempt.Outcome.FAILED
    attempt = _finish(batch, record, event, outcome)
    attempt.exc_type = str(event.data.get("exc_type") or "")[:200]
    attempt.exc_message = str(event.data.get("message") or "")
    attempt.traceback = str(event.data.get("traceback") or "")
    retry_at = _dt(event.data.get("retry_at"))
    moved = _end(record, attempt, Status.DEAD if retry_at is None else Status.RETRYING)
    if moved:
        record.error_type = attempt.exc_type
        record.last_error = attempt.exc_message
        record.error_fingerprint = fingerprint(
            record.task, attempt.exc_type, attempt.exc_message
        )
    batch.add_event(
        record,
        event,
        Kind.LOST if lost else Kind.FAILED,
        f"{attempt.exc_type}: {attempt.exc_message}"[:1000],
        attempt=attempt.number,
        worker=attempt.worker_name,
    )
    if not moved:
        return
    if retry_at is not None:
        record.next_attempt_at = retry_at
        record.finished_at = None
        kind = Kind.RECOVERED if lost else Kind.RETRY_SCHEDULED
        batch.add_event(
            record,
            event,
            kind,
            f"attempt {attempt.number + 1} at "
            f"{retry_at.isoformat(timespec='milliseconds')}",
            suffix="r",
            next_attempt=attempt.number + 1,
            at=retry_at.isoformat(),
            delay=event.data.get("delay"),
        )
    else:
        record.next_attempt_at = None
        batch.add_event(
            record,
            event,
            Kind.DEAD,
            f"gave up after {attempt.number} of {record.max_attempts} attempts",
            suffix="d",
        )
        batch.dead.append(record.pk)


def _finish(
    batch: Batch, record: JobRecord, event: events.Event, outcome: str
) -> Attempt:
    attempt = batch.attempt(record, event, batch.finished)
    attempt.finished_at = _dt(event.at)
    attempt.duration = event.data.get("duration")
    attempt.outcome = outcome
    return attempt


def _end(record: JobRecord, attempt: Attempt, status: str) -> bool:
    """Move the record to an attempt's outcome; False (record untouched) if
    it has moved beyond it meanwhile."""
    if not transitions.step(record, status):
        return False
    record.attempts = max(record.attempts, attempt.number)
    record.finished_at = attempt.finished_at
    record.worker_name = attempt.worker_name
    record.worker_pid = None
    return True


def on_refused(batch: Batch, record: JobRecord, event: events.Event) -> None:
    """A worker would not run the job (another client wrote it, or its hash
    cannot be read): dead at once, with the reason, never retried."""
    reason = str(event.data.get("message") or "refused")
    replay = record.status == Status.DEAD and record.last_error == reason
    number = record.attempts if replay and record.attempts else record.attempts + 1
    event = replace(event, data={**event.data, "attempt": number})
    attempt = _finish(batch, record, event, Attempt.Outcome.FAILED)
    attempt.exc_type = str(event.data.get("exc_type") or "")[:200]
    attempt.exc_message = reason
    moved = _end(record, attempt, Status.DEAD)
    if moved:
        record.max_attempts = max(record.max_attempts, number)
        record.next_attempt_at = None
        record.error_type = attempt.exc_type
        record.last_error = reason
        record.error_fingerprint = fingerprint(record.task, attempt.exc_type, reason)
    batch.add_event(
        record,
        event,
        Kind.FAILED,
        f"{attempt.exc_type}: {reason}"[:1000],
        attempt=number,
        worker=attempt.worker_name,
    )
    if moved:
        batch.add_event(record, event, Kind.DEAD, "refused: never retried", suffix="d")
        batch.dead.append(record.pk)


#: One handler per kind of event (tests check that none is missing).
HANDLERS: dict[str, Callable[[Batch, JobRecord, events.Event], None]] = {
    events.Kind.ENQUEUED: on_enqueued,
    events.Kind.SCHEDULED: on_scheduled,
    events.Kind.DEFERRED: on_deferred,
    events.Kind.STARTED: on_started,
    events.Kind.SUCCEEDED: on_succeeded,
    events.Kind.FAILED: on_failed,
    events.Kind.LOST: on_failed,
    events.Kind.REFUSED: on_refused,
}

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


@transaction.atomic
def apply(entries: list[events.Event]) -> int:
    """Write a batch of events to the database; safe to call again with it."""
    records = load_records(_db(), {e.job_id for e in entries})
    records.update(foreign_records([e for e in entries if e.job_id not in records]))
    batch = Batch(records=records)
    for event in entries:
        record = records.get(event.job_id)
        handler = HANDLERS.get(event.kind)
        if record is None or handler is None:
            continue  # purged history, or a kind this release does not know
        try:
            handler(batch, record, event)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            # One entry nobody can read must not hold up the stream forever.
            log.warning(
                "skipped an unreadable event",
                extra={"job_id": event.job_id, "kind": event.kind},
                exc_info=True,
            )
            continue
        batch.dirty.add(record.pk)
    _block_children_of_dead(batch)
    transitions.save_moved([records[pk] for pk in batch.dirty], RECORD_FIELDS)
    db = _db()
    for attempts, fields in (
        (batch.started, STARTED_FIELDS),
        (batch.finished, FINISHED_FIELDS),
    ):
        insert_many(db, Attempt, list(attempts.values()), ["job", "number"], fields)
    insert_many(db, JobEvent, batch.timeline)
    return len(batch.dirty)


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
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                [
                    f.get_db_prep_save(getattr(row, f.attname), connection)
                    for f in fields
                ]
                for row in rows
            ],
        )


def foreign_records(entries: list[events.Event]) -> dict[str, JobRecord]:
    """Records for jobs the console did not submit, from the events that
    refused them: origin "foreign", the function they name as their task."""
    first: dict[str, events.Event] = {}
    for event in entries:
        if event.kind == events.Kind.REFUSED and len(event.job_id) <= JOB_ID_LENGTH:
            first.setdefault(event.job_id, event)
    if not first:
        return {}
    JobRecord.objects.bulk_create(
        [
            foreign_record(job_id, event.at, event.data)
            for job_id, event in first.items()
        ],
        ignore_conflicts=True,  # replayed, or recorded meanwhile by reconcile
    )
    return JobRecord.objects.in_bulk(list(first))


def foreign_record(job_id: str, at: float, data: dict[str, Any]) -> JobRecord:
    """A job another client wrote, as far as it could be read (never from a
    pickle: its arguments are kept only when they were JSON)."""
    arguments = data.get("arguments")
    submitted = _dt(_number(data.get("created"))) or _dt(at) or datetime.now(UTC)
    return JobRecord(
        id=job_id,
        task=str(data.get("function") or "unknown")[:200],
        queue=str(data.get("queue") or "")[:64],
        payload=arguments if isinstance(arguments, dict) else {},
        status=transitions.INITIAL,
        max_attempts=1,
        origin=Origin.FOREIGN,
        submitted_at=submitted,
    )


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _block_children_of_dead(batch: Batch) -> None:
    """A child that may not run after a failed parent says why it waits."""
    if not batch.dead:
        return
    links = JobDependency.objects.filter(
        parent_id__in=batch.dead,
        allow_failure=False,
        child__status__in=[Status.DEFERRED, Status.PENDING],
    ).values_list("child_id", "parent_id")
    now = datetime.now(UTC)
    for child_id, parent_id in links:
        reason = f"waiting on dependency {parent_id}, which is dead"
        if child_id in batch.records:  # written with the rest of the batch
            batch.records[child_id].last_error = reason
            batch.dirty.add(child_id)
        else:
            JobRecord.objects.filter(pk=child_id).update(last_error=reason)
        batch.timeline.append(
            TimelineRow(
                job_id=child_id,
                kind=Kind.BLOCKED,
                at=now,
                message=reason,
                detail={"parent": parent_id},
                stream_id=f"blocked:{child_id}:{parent_id}",
            )
        )


def stream_rows(reply: Any) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    """The (id, fields) rows of an XREAD(GROUP) reply, which redis-py shapes
    by protocol: RESP2 (redis-py 7's default) [[stream, rows], ...], RESP3
    (redis-py 8's) {stream: [rows]}."""
    if isinstance(reply, dict):
        return [row for batches in reply.values() for rows in batches for row in rows]
    return [row for _stream, rows in reply or [] for row in rows]


class Recorder:
    """Reads the stream as one consumer of the recorder group."""

    def __init__(self, consumer: str | None = None) -> None:
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}"
        self._group_ready = False
        #: Entries of ours may be read but unacknowledged (at start, after a
        #: failed batch, after a claim): read those first. Off once none are
        #: left, which saves a round trip per batch.
        self._pending = True

    def _client(self) -> Any:
        client = queueing.connection()
        if not self._group_ready:
            try:
                client.xgroup_create(events.STREAM, events.GROUP, id="0", mkstream=True)
            except BackendError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._group_ready = True
        return client

    def drain(self, block_ms: int | None = None, count: int = BATCH) -> int:
        """Apply one batch: our unacknowledged entries first, then new ones."""
        try:
            return self._drain(block_ms, count)
        except BackendError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # Redis came back without its data
            self._pending = True
            return self._drain(block_ms, count)

    def _drain(self, block_ms: int | None, count: int) -> int:
        client = self._client()
        entries: list[events.Event] = []
        replayed = self._pending
        if replayed:
            entries = self._read(client, "0", count, None)
            replayed = bool(entries)
        if not entries:
            entries = self._read(client, ">", count, block_ms)
        # Until acknowledged, what was read is pending (a failed batch is
        # read again first).
        self._pending = True
        if entries:
            apply(entries)
            ids = [e.stream_id for e in entries]
            with client.pipeline() as pipe:
                pipe.xack(events.STREAM, events.GROUP, *ids)
                pipe.xdel(events.STREAM, *ids)
                pipe.execute()
        # New entries acknowledged (or none read): nothing of ours is left
        # pending. Replayed ones: read again until none is left.
        self._pending = replayed
        return len(entries)

    def _read(
        self, client: Any, start: str, count: int, block_ms: int | None
    ) -> list[events.Event]:
        reply = client.xreadgroup(
            events.GROUP,
            self.consumer,
            {events.STREAM: start},
            count=count,
            block=block_ms,
        )
        return [events.parse(sid, data) for sid, data in stream_rows(reply) if data]

    def claim_abandoned(self) -> int:
        """Take over entries a dead recorder read but never acknowledged."""
        client = self._client()
        reply = client.xautoclaim(
            events.STREAM,
            events.GROUP,
            self.consumer,
            min_idle_time=CLAIM_IDLE_MS,
            count=BATCH,
        )
        claimed = len(reply[1]) if reply and len(reply) > 1 else 0
        if claimed:
            self._pending = True  # now ours: read them before new ones
        return claimed

    def drain_all(self) -> int:
        total = 0
        while True:
            applied = self.drain()
            if not applied:
                return total
            total += applied

    def backlog(self) -> int:
        return int(self._client().xlen(events.STREAM))
