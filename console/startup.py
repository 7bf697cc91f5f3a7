"""Turn configuration mistakes into one clear line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, SystemCheckError


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


#: The system checks a worker runs as it starts: its models and the task
#: registry. The web's checks (middleware, templates, URLs, the migration
#: commands) would import all of those into every worker, 1.3 MB each;
#: `manage.py migrate`, `check` and the web run them.
WORKER_CHECK_TAGS = ["models", "jobs"]


def check_worker() -> None:
    """Raises SystemCheckError when a check a worker depends on fails."""
    import django

    django.setup()
    BaseCommand().check(tags=WORKER_CHECK_TAGS)


def run_or_explain(
    argv: list[str], runner: Callable[[list[str]], None] | None = None
) -> None:
    from django.conf import settings

    from jobs.backend import errors

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings to load here
    except ImproperlyConfigured as exc:
        fail(str(exc))
    if runner is None:
        from django.core.management import execute_from_command_line

        runner = execute_from_command_line
    try:
        if settings.WORKER_PROCESS and "--skip-checks" not in argv:
            check_worker()
            argv = [*argv, "--skip-checks"]
        with errors.translating():  # django-rq's own clients raise redis'
            runner(argv)
    except (ImproperlyConfigured, SystemCheckError) as exc:
        fail(str(exc))
    except errors.BackendUnavailable as exc:
        fail(errors.explain(exc))
    except errors.BackendError as exc:
        if "auth" not in str(exc).lower() and "pass" not in str(exc).lower():
            raise
        fail(errors.explain(exc))
