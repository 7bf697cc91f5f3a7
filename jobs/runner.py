"""The one function every RQ job calls: look the task up, validate, run."""

from __future__ import annotations

from typing import Any

from django.db import close_old_connections, connections

from jobs import progress, queueing, registry


def run(task: str, payload: dict[str, Any]) -> Any:
    definition = registry.get(task)
    # Validated again here: the payload may have been written to Redis by an
    # older release or by hand, and the task must never see bad input.
    model = definition.validate(payload)
    job_id, attempt = queueing.current_job_identity()
    context = progress.JobContext(
        job_id=job_id,
        task=task,
        attempt=attempt,
        reporter=lambda pct, msg: queueing.store_progress(job_id, pct, msg),
    )
    close_old_connections()
    try:
        with progress.running(context):
            return definition.func(model)
    finally:
        # A job process never keeps a database connection past its job.
        connections.close_all()
