"""Django's Tasks API from wherever this Django has it.

Django 6.0 ships it as `django.tasks`; on Django 5.2 the `django-tasks`
backport (`django_tasks`) provides the same API under other module names.
Everything in jobs.tasks_backend imports the API from here, so one module
serves both. The names are looked up at run time (typed Any): a static import
of the one that is absent would fail mypy on the other Django.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from typing import Any

#: True on Django 6.0+, where the API is part of Django.
BUILT_IN = find_spec("django.tasks") is not None
PACKAGE = "django.tasks" if BUILT_IN else "django_tasks"


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}{name}")


_base = _module(".base")
_exceptions = _module(".exceptions")
_signals = _module(".signals")

BaseTaskBackend: Any = _module(".backends.base").BaseTaskBackend
Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
DEFAULT_TASK_PRIORITY: int = _base.DEFAULT_TASK_PRIORITY
#: `InvalidTask` in Django, `InvalidTaskError` in the backport.
InvalidTask: Any = getattr(
    _exceptions, "InvalidTask", getattr(_exceptions, "InvalidTaskError", None)
)
TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist
task_enqueued: Any = _signals.task_enqueued
task_started: Any = _signals.task_started
task_finished: Any = _signals.task_finished
normalize_json: Any = (
    importlib.import_module("django.utils.json").normalize_json
    if BUILT_IN
    else _module(".utils").normalize_json
)
