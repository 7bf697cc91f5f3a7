"""The job event stream: what workers and the enqueue path tell the recorder.

Entries are flat string maps (Redis stream fields): kind, job, at (epoch
seconds) and data (a JSON object with the kind's details). Workers append them
inside the pipelines RQ already sends, so recording costs no extra round trip.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

STREAM = "console:events"
GROUP = "recorder"


class Kind(StrEnum):
    """Every kind of entry the stream carries; the recorder handles each."""

    #: In a queue (submit, a retry, run now, a repair's requeue).
    ENQUEUED = "enqueued"
    #: Waiting for a time: data run_at (ISO).
    SCHEDULED = "scheduled"
    #: Waiting on its parents.
    DEFERRED = "deferred"
    #: An attempt began: data attempt, worker, host, pid.
    STARTED = "started"
    #: An attempt ended well: data attempt, worker, started, duration, result.
    SUCCEEDED = "succeeded"
    #: An attempt raised: data exc_type, message, traceback, retry_at, delay.
    FAILED = "failed"
    #: An attempt's worker died under it: data as for FAILED.
    LOST = "lost"
    #: A worker would not run it (another client wrote it, unreadable).
    REFUSED = "refused"


@dataclass(frozen=True)
class Event:
    stream_id: str
    #: A Kind's value, or any text another client wrote (no handler applies).
    kind: str
    job_id: str
    at: float
    data: dict[str, Any]


def fields(
    kind: Kind, job_id: str, at: float | None = None, **data: Any
) -> dict[str, str]:
    """A stream entry, as producers append it."""
    return {
        "kind": kind.value,
        "job": job_id,
        "at": repr(time.time() if at is None else at),
        "data": json.dumps(data, default=str) if data else "{}",
    }


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def parse(stream_id: bytes | str, raw: dict[Any, Any]) -> Event:
    """An entry as the recorder reads it. Any client of Redis may append to
    the stream: an entry that is not ours still parses (to an event no
    handler applies), so one bad entry never holds up the ones after it."""
    entry = {_text(k): _text(v) for k, v in raw.items()}
    try:
        data = json.loads(entry.get("data", "{}"))
    except ValueError:
        data = {"unparsable": entry.get("data", "")}
    return Event(
        stream_id=_text(stream_id),
        kind=entry.get("kind", ""),
        job_id=entry.get("job", ""),
        at=_epoch(entry.get("at", "")),
        data=data if isinstance(data, dict) else {},
    )


def _epoch(value: str) -> float:
    """Seconds since the epoch, 0 when the text is not a plausible moment."""
    try:
        found = float(value or 0)
    except ValueError:
        return 0.0
    return found if 0 <= found < 1e11 else 0.0
