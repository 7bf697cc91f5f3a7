"""Start a section from a clean slate: empty Redis, empty job tables."""

from __future__ import annotations

from django.db import connection, transaction

from jobs.backend import connect
from jobs.models import Attempt, JobDependency, JobEvent, JobRecord, Schedule

#: Children before parents. Schedules and jobs point at each other (a firing's
#: job, a schedule's last job): one transaction, so the deferred foreign-key
#: checks run once both are gone.
TABLES = (JobEvent, Attempt, JobDependency, Schedule, JobRecord)


def reset() -> None:
    connect.connection().flushall()
    with transaction.atomic(), connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
