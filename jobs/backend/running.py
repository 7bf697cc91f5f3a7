"""What a running job knows of itself, from RQ's current job: an adapter
(like queueing.py) for jobs.tasks_backend, which must not read SQL on every
job to build the TaskResult that Django's API hands a running task.

Earlier attempts' failures are noted in the job's meta (note_failure), which
RQ writes anyway when it schedules the retry: no round trip of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rq import get_current_job

from jobs.backend.queues import logical_queue

#: Failures a job keeps in its meta, and how much of each traceback.
NOTES_KEPT = 10
NOTE_TEXT = 4000


@dataclass(frozen=True)
class Noted:
    """An earlier attempt's failure, as the job noted it."""

    path: str
    traceback: str
    worker: str
    started_at: datetime | None


@dataclass(frozen=True)
class CurrentRun:
    job_id: str
    attempt: int
    #: The attempt within this retry round: what the retry policy counts.
    round_attempt: int
    policy: dict[str, Any]
    worker: str
    queue: str
    #: When the job entered Redis (the outbox relay or a retry may be later
    #: than the submission).
    created_at: datetime | None
    notes: dict[int, Noted]


def _notes(raw: Any) -> dict[int, Noted]:
    """Read from Redis, so checked: malformed entries are skipped."""
    found = {}
    for entry in raw if isinstance(raw, list) else []:
        if not (isinstance(entry, list) and len(entry) == 5):
            continue
        number, path, text, worker, started = entry
        if isinstance(number, int) and isinstance(started, int | float | None):
            found[number] = Noted(
                str(path),
                str(text),
                str(worker),
                datetime.fromtimestamp(started, UTC) if started else None,
            )
    return found


def current_run() -> CurrentRun | None:
    job = get_current_job()
    if job is None:
        return None
    attempt = int(job.meta.get("attempt", 1) or 1)
    offset = int(job.meta.get("attempt_offset", 0) or 0)
    return CurrentRun(
        job_id=job.id,
        attempt=attempt,
        round_attempt=attempt - offset,
        policy=dict(job.meta.get("policy") or {}),
        worker=job.worker_name or "",
        queue=logical_queue(job.origin),
        created_at=job.created_at.replace(tzinfo=UTC) if job.created_at else None,
        notes=_notes(job.meta.get("failures")),
    )


def note_failure(attempt: int, path: str, text: str) -> None:
    """Keep this attempt's failure in the running job's meta for the next
    attempt, which reads it there: the history may not have it yet."""
    job = get_current_job()
    if job is None:
        return
    noted = job.meta.get("failures")
    kept = noted[-(NOTES_KEPT - 1) :] if isinstance(noted, list) else []
    started = job.started_at.replace(tzinfo=UTC).timestamp() if job.started_at else None
    entry = [attempt, path, text[-NOTE_TEXT:], job.worker_name or "", started]
    job.meta["failures"] = [*kept, entry]
