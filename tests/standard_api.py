"""What the Django Tasks API tests share: the API, imported from Django 6.0
(django.tasks) or from the django-tasks backport on Django 5.2 (public
names only), and the settings every such test runs with."""

from __future__ import annotations

from typing import Any

import pytest

try:
    from django.tasks import TaskResultStatus, default_task_backend, task
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the backport
    from django_tasks import (  # type: ignore[no-redef, unused-ignore]
        TaskResultStatus,
        default_task_backend,
        task,
    )
    from django_tasks.exceptions import (  # type: ignore[no-redef, unused-ignore]
        InvalidTaskError as InvalidTask,
    )
    from django_tasks.exceptions import (  # type: ignore[no-redef, unused-ignore]
        TaskResultDoesNotExist,
    )
    from django_tasks.signals import (  # type: ignore[no-redef, unused-ignore]
        task_enqueued,
        task_finished,
        task_started,
    )

__all__ = [
    "InvalidTask",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "default_task_backend",
    "task",
    "task_enqueued",
    "task_finished",
    "task_started",
]

BACKEND = "jobs.tasks_backend.ConsoleTaskBackend"
MODULES = ["jobs.tasks.demo", "tests.standard_tasks", "tests.standard_docs"]


@pytest.fixture(autouse=True)
def tasks_settings(settings: Any) -> None:
    """Import it into a test module: the test tasks' modules are task
    modules, and retries come at once."""
    settings.JOB_TASK_MODULES = MODULES
    settings.TASKS = {
        "default": {
            "BACKEND": BACKEND,
            "OPTIONS": {"RETRY": {"max_attempts": 3, "base": 0, "jitter": 0}},
        }
    }


def finished(result: Any) -> Any:
    def check() -> bool:
        result.refresh()
        return bool(result.is_finished)

    return check
