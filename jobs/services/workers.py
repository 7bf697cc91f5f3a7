"""Worker actions: stop one, from any front door."""

from __future__ import annotations

from typing import Any

from jobs.backend import live
from jobs.models import Origin
from jobs.services.control import audit
from jobs.services.validation import UnknownReference, check_text


def worker_stop(
    *, name: str, actor: Any, origin: str = Origin.CODE, reason: str = ""
) -> bool:
    """Ask a live worker to stop: no new job, the running ones finish (all of
    a worker's slots), then it exits, as on SIGTERM; a supervisor that keeps
    it running (systemd, compose, rqworker-pool) starts it again. False when
    it was asked already or is stopping (asked once only: a second ask would
    be RQ's cold shutdown, its jobs killed); UnknownReference when no live
    worker has that name."""
    check_text("name", name, identifier=True)
    outcome = live.ask_worker_to_stop(name)
    if outcome == "gone":
        raise UnknownReference.one("name", f"no live worker named {name!r}")
    if outcome == "stopping":
        return False
    audit(
        actor=actor,
        action="stop-worker",
        target=f"worker {name}",
        count=1,
        reason=reason,
        origin=origin,
    )
    return True
