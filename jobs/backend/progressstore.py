"""A running job's progress and log lines, kept in Redis for the job page."""

from __future__ import annotations

import json
import time
from typing import Any

from rq import get_current_job

from jobs.backend.connect import connection

PROGRESS_TTL = 7 * 24 * 3600


PROGRESS_LOG_LINES = 200


def current_job_identity() -> tuple[str, int]:
    job = get_current_job()
    if job is None:
        return "", 1
    return job.id, int(job.meta.get("attempt", 1) or 1)


def _progress_key(job_id: str) -> str:
    return f"console:progress:{job_id}"


def store_progress(job_id: str, percent: float | None, message: str | None) -> None:
    key = _progress_key(job_id)
    now = time.time()
    with connection().pipeline(transaction=False) as pipe:
        if percent is not None:
            pipe.hset(key, mapping={"percent": f"{percent:.2f}", "at": repr(now)})
        if message is not None:
            pipe.rpush(f"{key}:log", json.dumps({"at": now, "msg": message[:2000]}))
            pipe.ltrim(f"{key}:log", -PROGRESS_LOG_LINES, -1)
            pipe.expire(f"{key}:log", PROGRESS_TTL)
        pipe.expire(key, PROGRESS_TTL)
        pipe.execute()


def read_progress(job_id: str) -> tuple[float | None, list[dict[str, Any]]]:
    key = _progress_key(job_id)
    with connection().pipeline(transaction=False) as pipe:
        pipe.hget(key, "percent")
        pipe.lrange(f"{key}:log", 0, -1)
        percent, lines = pipe.execute()
    return _percent(percent), [line for line in map(_log_line, lines) if line]


def _percent(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _log_line(raw: bytes) -> dict[str, Any] | None:
    """A progress line as {"at": epoch, "msg": text}; None if it is not one."""
    try:
        line = json.loads(raw)
        at = float(line["at"])
    except (ValueError, TypeError, KeyError):
        return None
    return {"at": at, "msg": str(line["msg"])} if 0 <= at < 1e11 else None
