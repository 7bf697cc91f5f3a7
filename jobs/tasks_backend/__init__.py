"""A backend for Django's standard Tasks API (DEP 14): `@task` functions run
as ordinary jobs of this project. Settings:

    TASKS = {"default": {"BACKEND": "jobs.tasks_backend.ConsoleTaskBackend"}}

See README.md, "Django's Tasks API". The class is imported on first use: the
package's other modules need the app registry, settings need only the path.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "ConsoleTaskBackend":
        from jobs.tasks_backend.backend import ConsoleTaskBackend

        return ConsoleTaskBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
