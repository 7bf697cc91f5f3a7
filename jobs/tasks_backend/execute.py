"""The worker side: a standard task running inside an ordinary job.

The registry maps the task's module path to a StandardTask; the runner calls
it with the validated payload, in the job process. It builds the TaskResult
that Django's API promises the running task (its context) and the signals,
from the durable history plus what the job knows of the current attempt.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from jobs import queueing
from jobs.models import Attempt, JobRecord
from jobs.registry import RetryPolicy
from jobs.tasks_backend import compat, results
from jobs.tasks_backend.results import Arguments
from jobs.workers import exception_names


class NotInJob(RuntimeError):
    pass


def json_value(value: Any, what: str) -> Any:
    """`value` as JSON holds it, or TypeError: Django's rule for a task's
    arguments and return value. Never pickled, never stringified: a value
    that would come back different (a tuple becomes a list, as in Django)
    must at least come back equal, so integer keys or NaN are refused."""
    try:
        normal = compat.normalize_json(value)
        text = json.dumps(normal, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} cannot be stored as JSON ({exc})") from None
    except RecursionError:
        raise TypeError(
            f"{what} cannot be stored as JSON (nested too deeply)"
        ) from None
    if json.loads(text) != normal:
        raise TypeError(
            f"{what} would not come back the same from JSON (dictionary keys "
            "must be strings)"
        )
    return normal


@dataclass(frozen=True)
class StandardTask:
    """The registry's callable for a standard task. Equal for one function
    whatever its Task's options (`using()` makes new Task objects)."""

    func: Any
    task: Any = field(compare=False)

    def __call__(self, arguments: Arguments) -> Any:
        return run(self.task, arguments)


def _history(run_now: queueing.CurrentRun, base: Any) -> tuple[JobRecord, list[Any]]:
    """The record and the attempts so far, this one last. The recorder may
    lag a moment behind the workers: an earlier attempt it has not written
    yet still counts (unnamed)."""
    record = JobRecord.objects.filter(pk=run_now.job_id).first()
    if record is None:  # history purged while the job waited in Redis
        record = JobRecord(
            id=run_now.job_id, queue=base.queue_name, submitted_at=timezone.now()
        )
    recorded = {
        a.number: a
        for a in Attempt.objects.filter(
            job_id=run_now.job_id, number__lt=run_now.attempt
        )
    }
    attempts = [recorded.get(n) or Attempt(number=n) for n in range(1, run_now.attempt)]
    attempts.append(
        Attempt(
            number=run_now.attempt,
            worker_name=run_now.worker,
            started_at=timezone.now(),
        )
    )
    return record, attempts


def _errors(run_now: queueing.CurrentRun, attempts: list[Attempt]) -> list[Any]:
    """Each earlier attempt's error: from the history, else as the job noted
    it (note_error), so a retry's context has them all however late the
    recorder is."""
    errors = []
    for attempt in attempts[:-1]:
        if attempt.outcome in (Attempt.Outcome.FAILED, Attempt.Outcome.LOST):
            errors.append(results.error_of(attempt))
        elif attempt.number in run_now.errors:
            path, text = run_now.errors[attempt.number]
            errors.append(compat.TaskError(exception_class_path=path, traceback=text))
    return errors


def run(base: Any, arguments: Arguments) -> Any:
    run_now = queueing.current_run()
    if run_now is None:
        raise NotInJob("a standard task runs through enqueue(), inside a job")
    record, attempts = _history(run_now, base)
    task = results.task_for(base, record, arguments)
    result = results.build(task, record, attempts, arguments)
    results.set_fields(result, errors=_errors(run_now, attempts))
    results.started(result, attempts[-1].started_at)
    sender = type(task.get_backend())
    compat.task_started.send(sender=sender, task_result=result)
    try:
        call = [compat.TaskContext(task_result=result)] if task.takes_context else []
        value = task.call(*call, *arguments.args, **arguments.kwargs)
        value = json_value(value, "the return value")
    except Exception as exc:
        _failed(result, run_now, exc, sender)
        raise
    results.set_fields(
        result,
        status=compat.TaskResultStatus.SUCCESSFUL,
        finished_at=timezone.now(),
    )
    results.set_return_value(result, value)
    compat.task_finished.send(sender=sender, task_result=result)
    return value


def _failed(
    result: Any, run_now: queueing.CurrentRun, exc: Exception, sender: type
) -> None:
    """The attempt's error joins the result; task_finished only once the
    task is finished, that is when the retry policy gives up (the worker
    decides the same from the same policy)."""
    kind = type(exc)
    error = compat.TaskError(
        exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
    )
    result.errors.append(error)
    queueing.note_error(run_now.attempt, error.exception_class_path, error.traceback)
    policy = RetryPolicy.from_dict(run_now.policy)
    if policy.allows_retry(run_now.round_attempt, exception_names(kind)):
        results.set_fields(result, status=compat.TaskResultStatus.READY)
        return
    results.set_fields(
        result, status=compat.TaskResultStatus.FAILED, finished_at=timezone.now()
    )
    compat.task_finished.send(sender=sender, task_result=result)
