"""django-rq's `rqworker`, plus slots: `--concurrency N` runs up to N jobs at
once in one worker process, each in the execution model its task declares
(`--execution` imposes one on every job). See jobs/backend/slots.py."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError, CommandParser

from jobs import registry
from jobs.backend import slots
from jobs.backend.commands import WorkerCommand

#: One process's slots: more threads than this is a mistake, not a setting.
MAX_CONCURRENCY = 1000


def concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ArgumentTypeError(f"must be from 1 to {MAX_CONCURRENCY}")
    return value


class Command(WorkerCommand):
    help = (WorkerCommand.__doc__ or "").strip()

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--concurrency",
            type=concurrency,
            default=None,
            help="run up to N jobs at once in this worker process (slots)",
        )
        parser.add_argument(
            "--execution",
            choices=registry.EXECUTION_MODELS,
            default=None,
            help="run every job this way, whatever its task declares "
            "(with --concurrency; default: each task's own)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, model = options.get("concurrency"), options.get("execution")
        if count is not None or model is not None:
            if options.get("worker_class"):
                raise CommandError(
                    "--concurrency and --execution use the app's slot worker: "
                    "leave out --worker-class"
                )
            options["worker_class"] = slots.worker_class(count or 1, model)
        super().handle(*args, **options)
