"""Start a section from a clean slate: empty Redis, empty job tables."""

from __future__ import annotations

from django.db import connection

from jobs import queueing
from jobs.models import Attempt, JobDependency, JobEvent, JobRecord

#: Children before parents, so plain DELETEs need no cascade.
TABLES = (JobEvent, Attempt, JobDependency, JobRecord)


def reset() -> None:
    queueing.connection().flushall()
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
