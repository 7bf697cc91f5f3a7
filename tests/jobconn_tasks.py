"""Tasks for tests/test_job_connection.py: jobs that leave their process's
Redis connection in a state the next job must never inherit."""

from __future__ import annotations

from pydantic import BaseModel

from jobs.backend import connect
from jobs.registry import task

MODULES = "jobs.tasks.demo,tests.jobconn_tasks"

#: Kept referenced: the subscription stays open until the process ends.
_held: list[object] = []


class Empty(BaseModel):
    pass


@task("tests.leave_subscribed", schema=Empty, execution="fork")
def leave_subscribed(payload: Empty) -> dict[str, bool]:
    """Subscribe on this process's connection (the one its worker lent, if it
    is idle) and end the job without unsubscribing."""
    pubsub = connect.connection().pubsub()
    pubsub.subscribe("tests:jobconn")
    # Its confirmation read: nothing is left to read on the socket, so only
    # the job process can tell that this connection is not fit for reuse.
    confirmed = pubsub.get_message(timeout=5)
    assert confirmed is not None and confirmed["type"] == "subscribe"
    _held.append(pubsub)
    return {"subscribed": True}
