"""django-rq's worker commands, for the app's own `rqworker` and
`rqworker-pool` (jobs/management/commands/) to extend: their modules' names
hold a dash, and only the backend imports django_rq."""

from __future__ import annotations

import importlib
from typing import Any

#: django-rq's `rqworker` and `rqworker-pool` command classes.
WorkerCommand: Any = importlib.import_module(
    "django_rq.management.commands.rqworker"
).Command
PoolCommand: Any = importlib.import_module(
    "django_rq.management.commands.rqworker-pool"
).Command
