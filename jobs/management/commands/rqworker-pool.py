"""django-rq's `rqworker-pool`, with the heap frozen once in the pool's parent.

Each pool worker is a fork of the parent. Freezing the parent's heap before
it forks (jobs.workers.prepare_to_fork) keeps the imported code and objects
shared by every pool worker; freezing in each worker instead would write to
those pages, one copy per worker (issue 19: about 18 MB each).
"""

from __future__ import annotations

import importlib
from typing import Any

from jobs.workers import prepare_to_fork

django_rq_pool = importlib.import_module("django_rq.management.commands.rqworker-pool")


class Command(django_rq_pool.Command):  # type: ignore[name-defined]
    help = django_rq_pool.Command.__doc__

    def handle(self, *args: Any, **options: Any) -> None:
        prepare_to_fork()
        super().handle(*args, **options)
