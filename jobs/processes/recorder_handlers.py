"""The recorder's event handlers: what each kind of stream event changes in a
batch (the record's move, its attempt, its timeline rows), before one write.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from jobs import events
from jobs.models import Attempt, JobEvent, JobRecord
from jobs.services import transitions

Status = JobRecord.Status
#: The timeline's kinds (what the job page shows), not the stream's.
Kind = JobEvent.Kind

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


@dataclass(slots=True)
class AttemptRow:
    """One Attempt row to insert, by the model's attribute names and with its
    defaults (a model instance cost more than the rest of its handling)."""

    job_id: str
    number: int
    worker_name: str = ""
    hostname: str = ""
    pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    outcome: str = Attempt.Outcome.RUNNING
    exc_type: str = ""
    exc_message: str = ""
    traceback: str = ""


@dataclass
class Batch:
    """What one batch of events changes, gathered before one write."""

    records: dict[str, JobRecord]
    started: dict[tuple[str, int], AttemptRow] = field(default_factory=dict)
    finished: dict[tuple[str, int], AttemptRow] = field(default_factory=dict)
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
        into: dict[tuple[str, int], AttemptRow],
    ) -> AttemptRow:
        number = int(event.data.get("attempt") or 1)
        key = (record.pk, number)
        found = into.get(key) or AttemptRow(job_id=record.pk, number=number)
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
) -> AttemptRow:
    attempt = batch.attempt(record, event, batch.finished)
    attempt.finished_at = _dt(event.at)
    attempt.duration = event.data.get("duration")
    attempt.outcome = outcome
    return attempt


def _end(record: JobRecord, attempt: AttemptRow, status: str) -> bool:
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
