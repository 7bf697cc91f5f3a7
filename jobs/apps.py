from __future__ import annotations

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from jobs import checks, registry  # noqa: F401 - registers system checks

        registry.load(settings.JOB_TASK_MODULES)
