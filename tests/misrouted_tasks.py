"""A task module with a configuration mistake, for the worker's start-up checks."""

from __future__ import annotations

from pydantic import BaseModel

from jobs.registry import task


class Nothing(BaseModel):
    pass


@task("tests.misrouted", schema=Nothing, queue="nowhere")
def misrouted(payload: Nothing) -> None:
    """Routed to a queue that JOB_QUEUES does not list."""
