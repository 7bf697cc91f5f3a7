"""django-rq's `rqworker-pool`, with the heap frozen once in the pool's parent.

Each pool worker is a fork of the parent. Freezing the parent's heap before
it forks (jobs.backend.forking.prepare_to_fork) keeps the imported code and objects
shared by every pool worker; freezing in each worker instead would write to
those pages, one copy per worker (issue 19: about 18 MB each).
"""

from __future__ import annotations

from typing import Any

from jobs.backend.commands import PoolCommand
from jobs.backend.forking import prepare_to_fork


class Command(PoolCommand):
    help = PoolCommand.__doc__

    def handle(self, *args: Any, **options: Any) -> None:
        prepare_to_fork()
        super().handle(*args, **options)
