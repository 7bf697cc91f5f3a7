"""What a running task can ask about itself and report: attempt, progress, log.

The runner installs the context; tasks call `current()`, `report()` and `log()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

Reporter = Callable[[float | None, str | None], None]


@dataclass(frozen=True)
class JobContext:
    job_id: str
    task: str
    attempt: int
    reporter: Reporter


_current: ContextVar[JobContext | None] = ContextVar("job_context", default=None)


class NoJobContext(RuntimeError):
    pass


def current() -> JobContext:
    context = _current.get()
    if context is None:
        raise NoJobContext("not running inside a job")
    return context


@contextmanager
def running(context: JobContext) -> Iterator[JobContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def report(percent: float | None = None, message: str | None = None) -> None:
    """Report progress (0-100) and/or a log line; a no-op outside a job."""
    context = _current.get()
    if context is not None:
        context.reporter(percent, message)


def log(message: str) -> None:
    report(None, message)
