"""Tasks for the slot worker's tests (tests/test_slots.py): `async def`
tasks, which run on a thread-model worker's event loop."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from jobs import progress
from jobs.registry import task

MODULES = "jobs.tasks.demo,tests.slot_tasks"


class Nap(BaseModel):
    seconds: float = Field(ge=0, le=600)


@task("tests.async_nap", schema=Nap, timeout=600)
async def async_nap(payload: Nap) -> dict[str, object]:
    """Await a sleep; report progress from the coroutine (its job's context)."""
    await asyncio.sleep(payload.seconds)
    progress.report(100.0, "awake")
    return {"slept": payload.seconds, "job": progress.current().job_id}


@task("tests.db_connection", schema=Nap, execution="thread")
def db_connection(payload: Nap) -> dict[str, int]:
    """Use the database, then hold the connection while the others run."""
    import threading
    import time

    from django.db import connection

    from jobs.models import JobRecord

    count = JobRecord.objects.count()
    time.sleep(payload.seconds)
    return {
        "jobs": count,
        "connection": id(connection.connection),
        "thread": threading.get_ident(),
    }
