"""System checks: configuration mistakes reported by `manage.py check`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("jobs")
def queues_and_tasks(app_configs: Any, **kwargs: Any) -> list[Error]:
    from jobs import registry

    errors = []
    for task in registry.all_tasks():
        if task.queue not in settings.JOB_QUEUES:
            errors.append(
                Error(
                    f"task {task.name!r} uses queue {task.queue!r}, which JOB_QUEUES "
                    "does not list",
                    id="jobs.E001",
                )
            )
    return errors
