"""Tasks written with Django's standard Tasks API, for tests/test_django_tasks.py.

Only the public API: the same module runs on Django 6.0 (django.tasks) and on
Django 5.2 with the django-tasks backport.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django 5.2
    from django_tasks import TaskContext, task  # type: ignore[no-redef, unused-ignore]


@task()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


@task()
def always_fails(message: str) -> None:
    raise LookupError(message)


@task(takes_context=True)
def succeeds_on(context: TaskContext, attempt: int) -> dict[str, Any]:
    """Fails until the given attempt, then tells what its context said."""
    if context.attempt < attempt:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return {
        "attempt": context.attempt,
        "result_id": context.task_result.id,
        "errors": [e.exception_class_path for e in context.task_result.errors],
        "status": str(context.task_result.status),
    }


@task()
async def double_later(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


@task()
def returns_a_set() -> Any:
    return {1, 2}


@task(priority=-20, queue_name="reports")
def nightly_report(name: str) -> str:
    return name


@task(takes_context=True)
def killed_first(context: TaskContext) -> dict[str, Any]:
    """Its first attempt's process dies (as a worker killed by the OOM killer)."""
    if context.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempt": context.attempt, "workers": len(context.task_result.worker_ids)}
