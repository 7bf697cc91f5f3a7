"""The recorder: turns the worker event stream into durable job history.

It reads the stream through a consumer group, applies a batch in one database
transaction and only then acknowledges it. A batch that fails (database down)
stays pending and is applied again later; every write is an idempotent upsert
keyed by the stream entry or the (job, attempt) pair, so a replay changes
nothing. Several monitors may run: the group shares the entries between them.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from jobs import events
from jobs.backend import connect
from jobs.backend.errors import BackendError
from jobs.models import Attempt, JobDependency, JobEvent, JobRecord, Origin
from jobs.processes.recorder_handlers import (
    HANDLERS,
    AttemptRow,
    Batch,
    TimelineRow,
    _dt,
)
from jobs.processes.recorder_sql import (
    BATCH,
    FINISHED_FIELDS,
    RECORD_FIELDS,
    STARTED_FIELDS,
    _db,
    insert_many,
    load_records,
)
from jobs.services import transitions

log = logging.getLogger("jobs.recorder")
Status = JobRecord.Status
#: The timeline's kinds (what the job page shows), not the stream's.
Kind = JobEvent.Kind

JOB_ID_LENGTH = JobRecord._meta.get_field("id").max_length or 64
#: Entries a crashed recorder left unacknowledged are taken over after this.
CLAIM_IDLE_MS = 30_000


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
    for attempts, fields in _attempt_writes(batch):
        insert_many(db, Attempt, attempts, ["job", "number"], fields)
    insert_many(db, JobEvent, batch.timeline)
    return len(batch.dirty)


def _attempt_writes(batch: Batch) -> list[tuple[list[AttemptRow], list[str]]]:
    """The attempts to upsert, and the fields each upsert sets. An attempt
    that started and ended in this batch is one row, not two: its end with
    its start's pid, which is what writing the start and then the end
    leaves (the end sets every field of the start but the pid)."""
    started: list[AttemptRow] = []
    whole: list[AttemptRow] = []
    for key, start in batch.started.items():
        end = batch.finished.get(key)
        if end is None:
            started.append(start)
        else:
            end.pid = start.pid
            whole.append(end)
    finished = [a for k, a in batch.finished.items() if k not in batch.started]
    return [
        (started, STARTED_FIELDS),
        (finished, FINISHED_FIELDS),
        (whole, [*FINISHED_FIELDS, "pid"]),
    ]


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
        client = connect.connection()
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
