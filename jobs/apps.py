from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from jobs import checks, conf, registry

        conf.apply_defaults()
        checks.missing_task_modules[:] = registry.load(settings.JOB_TASK_MODULES)
        post_migrate.connect(repair_text_index, sender=self)


def repair_text_index(using: str, **kwargs: Any) -> None:
    """A migration that rebuilt the jobs table on SQLite dropped the text
    index's triggers: put them back and re-index (jobs.textindex)."""
    from django.db import connections

    from jobs import textindex

    if textindex.repair(connections[using]):
        logging.getLogger("jobs").warning(
            "text index: triggers were missing (table rebuilt); re-indexed every job"
        )
