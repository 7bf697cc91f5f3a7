"""ConsoleTaskBackend: Django's Tasks API on this project's job machinery.

`enqueue` submits through jobs.services.submit like every other front door
(one SQL record, one Redis call, the outbox when Redis is down, on commit
inside a transaction), so a standard task is an ordinary job with origin
"django.tasks", named by its function's module path.

Workers learn standard tasks as they learn the project's own: by importing
JOB_TASK_MODULES at start-up (decorating a function validates its Task, and
validation registers it). A job never imports a path read from Redis beyond
those modules, so `enqueue` refuses a task that lives anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import transaction
from pydantic import ValidationError

from jobs import registry
from jobs.models import JobRecord, Origin
from jobs.services.submit import job_submit
from jobs.services.validation import RETRY_OPTIONS, InvalidInput
from jobs.tasks_backend import compat, results
from jobs.tasks_backend.execute import StandardTask, json_value
from jobs.tasks_backend.results import Arguments

#: What OPTIONS may hold; per task, TASK_OPTIONS maps a task's module path to
#: its own RETRY and TIMEOUT.
OPTION_NAMES = ("RETRY", "TIMEOUT", "TASK_OPTIONS")


def lane_for(priority: int) -> str:
    """Django's -100..100 onto the three lanes: above the default (0) runs in
    the high lane, the default in the normal lane, below it in the low lane.
    Every lane is first in, first out: 10 and 100 are equally urgent."""
    return "high" if priority > 0 else "low" if priority < 0 else "normal"


def within_task_modules(module: str) -> bool:
    return any(
        module == listed or module.startswith(listed + ".")
        for listed in settings.JOB_TASK_MODULES
    )


class ConsoleTaskBackend(compat.BaseTaskBackend):
    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if "QUEUES" not in params:
            # Every queue this deployment serves, not Django's ["default"].
            self.queues = set(settings.JOB_QUEUES)

    # -- definition ---------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        """Django's checks (a module-level function, priority, aware
        run_after, a queue of this backend), a queue this deployment serves,
        then the task is registered under its module path."""
        super().validate_task(task)
        if task.queue_name not in settings.JOB_QUEUES:
            raise compat.InvalidTask(
                f"Queue {task.queue_name!r} is not one of JOB_QUEUES "
                f"({', '.join(settings.JOB_QUEUES)})."
            )
        self._register(StandardTask(task.func, task))

    def _register(self, standard: StandardTask) -> None:
        task = standard.task
        try:
            if registry.get(task.module_path).func == standard:
                return  # `using()` validates a new Task for the same function
        except registry.UnknownTask:
            pass
        options = self._options(task.module_path)
        definition = registry.TaskDef(
            name=task.module_path,
            func=standard,
            schema=Arguments,
            queue=task.queue_name,
            priority=lane_for(task.priority),
            timeout=options["TIMEOUT"] or registry.TaskDef.timeout,
            retry=registry.RetryPolicy().merged(options["RETRY"]),
            description=(task.func.__doc__ or "").strip().split("\n")[0],
        )
        try:
            registry.add(definition)
        except ValueError:
            raise compat.InvalidTask(
                f"{task.module_path!r} is already the name of another task."
            ) from None

    def _options(self, path: str) -> dict[str, Any]:
        own = (self.options.get("TASK_OPTIONS") or {}).get(path) or {}
        return {
            "RETRY": {**(self.options.get("RETRY") or {}), **(own.get("RETRY") or {})},
            "TIMEOUT": own.get("TIMEOUT", self.options.get("TIMEOUT")),
        }

    # -- enqueue --------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        module = task.func.__module__
        if not within_task_modules(module):
            raise compat.InvalidTask(
                f"Task {task.module_path!r}: module {module!r} is not in "
                "JOB_TASK_MODULES, so no worker would know it. List it there."
            )
        arguments = Arguments(
            args=json_value(list(args), "the positional arguments"),
            kwargs=json_value(dict(kwargs), "the keyword arguments"),
            priority=task.priority,
            run_after=task.run_after,
            backend=self.alias,
        )
        options = self._options(task.module_path)
        try:
            record = job_submit(
                task=task.module_path,
                payload=arguments.model_dump(mode="json"),
                queue=task.queue_name,
                priority=lane_for(task.priority),
                run_at=task.run_after,
                retry=options["RETRY"] or None,
                timeout=options["TIMEOUT"],
                origin=Origin.DJANGO_TASKS,
            )
        except InvalidInput as exc:
            if any(name.startswith("payload") for name in exc.errors):
                raise ValueError(f"Task {task.module_path!r}: {exc}") from None
            raise compat.InvalidTask(f"Task {task.module_path!r}: {exc}") from None
        result = results.build(task, record, [], arguments)
        # After the job is in Redis (job_submit's own on-commit hook runs first).
        transaction.on_commit(
            lambda: compat.task_enqueued.send(type(self), task_result=result)
        )
        return result

    # -- results ----------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        """The result from the durable history (Redis may have forgotten it)."""
        record = None
        if (
            isinstance(result_id, str)
            and 0 < len(result_id) <= 64
            and result_id.isprintable()
        ):
            # Any origin: a standard task submitted from the console, the API
            # or a schedule is still a standard task's result.
            record = JobRecord.objects.filter(pk=result_id).first()
        if record is None:
            raise compat.TaskResultDoesNotExist(result_id)
        try:
            func = registry.get(record.task).func
            arguments = Arguments.model_validate(record.payload)
        except (registry.UnknownTask, ValidationError):
            raise compat.TaskResultDoesNotExist(
                f"{result_id}: task {record.task!r} is not known here"
            ) from None
        if not isinstance(func, StandardTask):
            raise compat.TaskResultDoesNotExist(result_id)
        task = results.task_for(func.task, record, arguments)
        attempts = list(record.attempt_set.order_by("number"))
        return results.build(task, record, attempts, arguments)

    # -- configuration ----------------------------------------------------------

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        return [
            checks.Error(f"TASKS[{self.alias!r}]: {problem}", id="jobs.E101")
            for problem in self._option_problems()
        ]

    def _option_problems(self) -> list[str]:
        options = self.options if isinstance(self.options, dict) else {}
        problems = [
            f"unknown OPTIONS key {name!r} (known: {', '.join(OPTION_NAMES)})"
            for name in options
            if name not in OPTION_NAMES
        ]
        per_task = options.get("TASK_OPTIONS") or {}
        if not isinstance(per_task, dict):
            return [*problems, "TASK_OPTIONS must map task paths to options"]
        scopes = [("OPTIONS", options)] + [
            (f"TASK_OPTIONS[{path!r}]", own) for path, own in per_task.items()
        ]
        for where, scope in scopes:
            retry = scope.get("RETRY") or {} if isinstance(scope, dict) else None
            if not isinstance(retry, dict):
                problems.append(f"{where}: RETRY must be a dictionary")
                continue
            problems += [
                f"{where}: unknown retry option {name!r} "
                f"(known: {', '.join(RETRY_OPTIONS)})"
                for name in retry
                if name not in RETRY_OPTIONS
            ]
        return problems
