"""The one function every RQ job calls: look the task up, validate, run."""

from __future__ import annotations

import inspect
import os
import resource
from typing import Any

from django.db import close_old_connections, connections

from jobs import eventloop, progress, registry
from jobs.backend import connect, progressstore


def limit_memory(megabytes: int) -> None:
    """Cap this job process's address space: an allocation past the cap raises
    MemoryError in the task (a normal, retryable failure) and harms no other
    job. Only ever applied in a forked job process, never in a worker."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = current + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run(task: str, payload: dict[str, Any]) -> Any:
    definition = registry.get(task)
    # Validated again here: the payload may have been written to Redis by an
    # older release or by hand, and the task must never see bad input.
    model = definition.validate(payload)
    job_id, attempt = progressstore.current_job_identity()
    context = progress.JobContext(
        job_id=job_id,
        task=task,
        attempt=attempt,
        reporter=lambda pct, msg: progressstore.store_progress(job_id, pct, msg),
    )
    if definition.memory_limit_mb and connect.in_job_process():
        limit_memory(definition.memory_limit_mb)
    close_old_connections()
    try:
        with progress.running(context):
            result = definition.func(model)
            if inspect.isawaitable(result):  # an `async def` task
                result = eventloop.run(result)
            return result
    finally:
        # A job process never keeps a database connection past its job.
        connections.close_all()
