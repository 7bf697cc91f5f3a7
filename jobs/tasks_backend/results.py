"""A standard task's TaskResult, read from the durable history.

The job record and its attempts (SQL) are the truth: a result is there after
Redis forgot the job. Status mapping (README, "Django's Tasks API"):
pending, queued, scheduled, deferred and retrying are READY (enqueued, or
ready to run again); started is RUNNING; succeeded is SUCCESSFUL; dead and
canceled are FAILED.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from jobs.models import Attempt, JobRecord
from jobs.tasks_backend import compat

Status = JobRecord.Status


class WorkerLost(Exception):  # noqa: N818 - the name the console shows
    """An attempt whose worker died (killed, out of memory, host lost): no
    exception was raised, so its error names this class."""


class Arguments(BaseModel):
    """A standard task's payload: its call, and the Task attributes that the
    job record does not hold as given (the lane is not the priority, and
    run_at is empty for a run_after already past). The queue it holds."""

    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-100, le=100)
    run_after: datetime | None = None
    backend: str = "default"


STATUS: dict[str, Any] = {
    Status.PENDING: compat.TaskResultStatus.READY,
    Status.QUEUED: compat.TaskResultStatus.READY,
    Status.SCHEDULED: compat.TaskResultStatus.READY,
    Status.DEFERRED: compat.TaskResultStatus.READY,
    Status.RETRYING: compat.TaskResultStatus.READY,
    Status.STARTED: compat.TaskResultStatus.RUNNING,
    Status.SUCCEEDED: compat.TaskResultStatus.SUCCESSFUL,
    Status.DEAD: compat.TaskResultStatus.FAILED,
    Status.CANCELED: compat.TaskResultStatus.FAILED,
}

#: Python's formatted traceback: this line, indented frame lines, then the
#: exception's line "module.QualName: message" (no module for builtins).
_TRACEBACK = "Traceback (most recent call last):"
_HEADER = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def exception_path(traceback: str, exc_type: str) -> str:
    """The exception's class path, from the traceback the worker recorded
    (the last of its chained blocks names the class with its module). Falls
    back on the bare class name the attempt holds."""
    found = None
    lines = traceback.splitlines()
    for number, line in enumerate(lines):
        if line != _TRACEBACK:
            continue
        following = (x for x in lines[number + 1 :] if x and not x[0].isspace())
        header = _HEADER.match(next(following, ""))
        found = header.group(1) if header else found
    if found:
        return found if "." in found else _builtin(found)
    if exc_type == "WorkerLost":
        return f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"
    return _builtin(exc_type) if exc_type else "builtins.Exception"


def _builtin(name: str) -> str:
    return f"builtins.{name}" if hasattr(builtins, name) else name


def error_of(attempt: Attempt) -> Any:
    return compat.TaskError(
        exception_class_path=exception_path(attempt.traceback, attempt.exc_type),
        traceback=attempt.traceback or f"{attempt.exc_type}: {attempt.exc_message}",
    )


def task_for(base: Any, record: JobRecord, arguments: Arguments) -> Any:
    """The Task as it was enqueued: priority, queue, run_after and backend."""
    try:
        return replace(
            base,
            priority=arguments.priority,
            queue_name=record.queue,
            run_after=arguments.run_after,
            backend=arguments.backend,
        )
    except compat.InvalidTask:
        return base  # the settings changed since: the Task as defined now


def build(
    task: Any,
    record: JobRecord,
    attempts: Sequence[Attempt],
    arguments: Arguments,
) -> Any:
    """A TaskResult for a job record and its attempts (in order)."""
    starts = [a.started_at for a in attempts if a.started_at]
    status = STATUS[record.status]
    result = compat.TaskResult(
        task=task,
        id=record.pk,
        status=status,
        enqueued_at=record.submitted_at,
        started_at=min(starts) if starts else None,
        finished_at=record.finished_at if record.is_final else None,
        last_attempted_at=max(starts) if starts else None,
        args=arguments.args,
        kwargs=arguments.kwargs,
        backend=arguments.backend,
        errors=[
            error_of(a)
            for a in attempts
            if a.outcome in (Attempt.Outcome.FAILED, Attempt.Outcome.LOST)
        ],
        worker_ids=[a.worker_name for a in attempts],
    )
    if status == compat.TaskResultStatus.SUCCESSFUL:
        set_return_value(result, record.result)
    return result


def set_return_value(result: Any, value: Any) -> None:
    object.__setattr__(result, "_return_value", value)


def set_fields(result: Any, **values: Any) -> None:
    """TaskResult is a frozen dataclass; Django's own backends update it so."""
    for name, value in values.items():
        object.__setattr__(result, name, value)
