"""The task registry: stable names mapped to functions, schemas and policies.

Only registered tasks can run. A job in Redis names its task; the worker looks
the name up here and never imports a path that came from Redis.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from pydantic import BaseModel


class UnknownTask(LookupError):
    pass


#: How a job can run under a worker with slots (jobs.backend.slots).
EXECUTION_MODELS = ("fork", "process", "thread")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with a cap and jitter.

    The delay before attempt n+1 is drawn from [(1 - jitter) * c, c] where
    c = min(cap, base * factor ** (n - 1)). jitter=1.0 is "full jitter" (the
    default, best at spreading a thundering herd); 0.5 is "equal jitter",
    whose delays never shrink from one attempt to the next.
    """

    max_attempts: int = 3
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 1.0
    no_retry: tuple[str, ...] = ()

    def ceiling(self, attempt: int) -> float:
        return float(min(self.cap, self.base * self.factor ** max(0, attempt - 1)))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter * rand())

    def allows_retry(self, attempt: int, exc_names: list[str]) -> bool:
        if attempt >= self.max_attempts:
            return False
        return not any(name in self.no_retry for name in exc_names)

    def as_dict(self) -> dict[str, Any]:
        """A new dict each call (callers may change it); the work is done once."""
        return {**self._as_dict, "no_retry": list(self.no_retry)}

    @cached_property
    def _as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "no_retry" in known:
            known["no_retry"] = tuple(known["no_retry"])
        return cls(**known)

    def merged(self, override: dict[str, Any] | None) -> RetryPolicy:
        if not override:
            return self
        allowed = {"max_attempts", "base", "factor", "cap", "jitter"}
        return replace(self, **{k: v for k, v in override.items() if k in allowed})


@dataclass(frozen=True)
class TaskDef:
    name: str
    func: Callable[[Any], Any]
    schema: type[BaseModel]
    queue: str = "default"
    priority: str = "normal"
    timeout: int = 180
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    memory_limit_mb: int | None = None
    description: str = ""
    #: How a worker runs it: "fork" (a fresh process per job, the default),
    #: "process" (a reused job process) or "thread" (a thread of the worker,
    #: for I/O-bound work); see jobs.backend.slots.
    execution: str = "fork"

    def validate(self, payload: Any) -> BaseModel:
        """Raises pydantic.ValidationError on a payload that breaks the schema."""
        return self.schema.model_validate(payload)


_TASKS: dict[str, TaskDef] = {}


def task(
    name: str,
    *,
    schema: type[BaseModel],
    queue: str = "default",
    priority: str = "normal",
    timeout: int = 180,
    retry: RetryPolicy | None = None,
    memory_limit_mb: int | None = None,
    execution: str | None = None,
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register a function as a task. It receives the validated payload model.

    `execution` says how a worker with slots runs it (`rqworker --concurrency`):
    "fork" (the default), "process" or "thread"; an `async def` task defaults
    to "thread" (its coroutine runs on the worker's event loop)."""
    if execution is not None and execution not in EXECUTION_MODELS:
        raise ValueError(
            f"task {name!r}: execution must be one of {', '.join(EXECUTION_MODELS)}"
        )

    def register(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        taken = _TASKS[name].func if name in _TASKS else None
        # A standard task's callable has no __qualname__ (jobs.tasks_backend).
        if (
            taken is not None
            and getattr(taken, "__qualname__", "") != func.__qualname__
        ):
            raise ValueError(f"task name {name!r} is already registered")
        _TASKS[name] = TaskDef(
            name=name,
            func=func,
            schema=schema,
            queue=queue,
            priority=priority,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            memory_limit_mb=memory_limit_mb,
            description=(func.__doc__ or "").strip().split("\n")[0],
            execution=execution
            or ("thread" if inspect.iscoroutinefunction(func) else "fork"),
        )
        return func

    return register


def add(definition: TaskDef) -> None:
    """Register a task defined elsewhere (Django's standard tasks, see
    jobs.tasks_backend); the first definition of a name stays."""
    existing = _TASKS.setdefault(definition.name, definition)
    if existing is not definition and existing.func != definition.func:
        raise ValueError(f"task name {definition.name!r} is already registered")


def get(name: str) -> TaskDef:
    try:
        return _TASKS.get(name) or _import_for(name)
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}") from None


def _import_for(name: str) -> TaskDef:
    """A task named by its module path (Django's standard tasks) in a module at
    or below one that JOB_TASK_MODULES lists: import that module on first use
    (a submodule the listed one does not import itself). Nothing outside the
    listed modules is ever imported for a name read from Redis."""
    from django.conf import settings

    module = name.rpartition(".")[0]
    if module and any(
        module == listed or module.startswith(listed + ".")
        for listed in settings.JOB_TASK_MODULES
    ):
        with contextlib.suppress(ImportError, ValueError):
            importlib.import_module(module)
    return _TASKS[name]


def all_tasks() -> list[TaskDef]:
    return sorted(_TASKS.values(), key=lambda t: t.name)


def load(modules: list[str]) -> list[str]:
    """Import the task modules named in settings (JOB_TASK_MODULES).

    Returns the ones that do not exist, for a system check to report (an
    import error raised while Django sets up would be a bare traceback); an
    error inside a module that exists is the module's own bug and is raised.
    """
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            name = exc.name or ""
            if not (module == name or module.startswith(f"{name}.")):
                raise
            missing.append(module)
    return missing
