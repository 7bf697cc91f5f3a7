"""The worker side: a standard task running inside an ordinary job.

The registry maps the task's module path to a StandardTask; the runner calls
it with the validated payload, in the job process. It builds the TaskResult
that Django's API promises the running task (its context) and the signals
from what the job itself knows (jobs.backend.running): its attempt, worker, queue
and the failures its earlier attempts noted. The history is read only when
an earlier attempt left no note (its worker was killed).
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from jobs.backend import running
from jobs.backend.outcomes import exception_names
from jobs.models import Attempt, JobRecord
from jobs.registry import RetryPolicy
from jobs.tasks_backend import compat, results
from jobs.tasks_backend.results import Arguments


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


def _earlier(run_now: running.CurrentRun) -> tuple[list[Attempt], list[Any]]:
    """The earlier attempts (for worker_ids and the first start) and their
    errors, as the job noted them: no SQL on the way of every job. Only when
    a note is missing (a killed worker's attempt) is the history read, which
    the recorder may not have written yet either: such an attempt still
    counts, unnamed."""
    numbers = range(1, run_now.attempt)
    if all(n in run_now.notes for n in numbers):
        notes = [run_now.notes[n] for n in numbers]
        return [
            Attempt(number=n, worker_name=note.worker, started_at=note.started_at)
            for n, note in zip(numbers, notes, strict=True)
        ], [
            compat.TaskError(exception_class_path=note.path, traceback=note.traceback)
            for note in notes
        ]
    recorded = {
        a.number: a
        for a in Attempt.objects.filter(
            job_id=run_now.job_id, number__lt=run_now.attempt
        )
    }
    attempts = [recorded.get(n) or Attempt(number=n) for n in numbers]
    errors = []
    for attempt in attempts:
        note = run_now.notes.get(attempt.number)
        if attempt.outcome in (Attempt.Outcome.FAILED, Attempt.Outcome.LOST):
            errors.append(results.error_of(attempt))
        elif note is not None:
            errors.append(
                compat.TaskError(
                    exception_class_path=note.path, traceback=note.traceback
                )
            )
    return attempts, errors


def _running_result(
    run_now: running.CurrentRun, base: Any, arguments: Arguments
) -> Any:
    """The TaskResult of this attempt, RUNNING. Its enqueued_at is when the
    job entered Redis (get_result says when enqueue() was called)."""
    now = timezone.now()
    record = JobRecord(
        id=run_now.job_id,
        queue=run_now.queue,
        submitted_at=run_now.created_at or now,
        status=JobRecord.Status.STARTED,
    )
    attempts, errors = _earlier(run_now)
    attempts.append(
        Attempt(number=run_now.attempt, worker_name=run_now.worker, started_at=now)
    )
    task = results.task_for(base, record, arguments)
    result = results.build(task, record, attempts, arguments)
    results.set_fields(result, errors=errors)
    return result


def run(base: Any, arguments: Arguments) -> Any:
    run_now = running.current_run()
    if run_now is None:
        raise NotInJob("a standard task runs through enqueue(), inside a job")
    result = _running_result(run_now, base, arguments)
    sender = type(result.task.get_backend())
    compat.task_started.send(sender=sender, task_result=result)
    try:
        task = result.task
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
    result: Any, run_now: running.CurrentRun, exc: Exception, sender: type
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
    running.note_failure(run_now.attempt, error.exception_class_path, error.traceback)
    policy = RetryPolicy.from_dict(run_now.policy)
    if policy.allows_retry(run_now.round_attempt, exception_names(kind)):
        results.set_fields(result, status=compat.TaskResultStatus.READY)
        return
    results.set_fields(
        result, status=compat.TaskResultStatus.FAILED, finished_at=timezone.now()
    )
    compat.task_finished.send(sender=sender, task_result=result)
