"""Queue actions: pause, resume, empty, and keeping Redis's pause set true.

The database (QueueState) is the source of truth for pauses; workers read
Redis, which is updated after commit and re-synced by the monitor.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.backend import live, queues
from jobs.models import Origin, QueueState
from jobs.services.control import (
    BULK_CAP,
    CANCEL_WAITING,
    BulkResult,
    acting_user,
    audit,
    jobs_act,
)
from jobs.services.validation import InvalidInput


def queue_empty(
    *, name: str, actor: Any, origin: str = Origin.CODE, reason: str = ""
) -> BulkResult:
    """Cancel every job waiting in a queue (capped at BULK_CAP)."""
    _known_queue(name)
    ids = live.waiting_job_ids(name, BULK_CAP)
    return jobs_act(
        action=CANCEL_WAITING,
        ids=ids,
        actor=actor,
        origin=origin,
        reason=reason or "queue emptied",
        target=f"queue {name}",
    )


def queue_sync_paused() -> None:
    """The database is the source of truth for pauses; Redis (which workers
    read) is brought back in line, e.g. after it restarted without its data."""
    paused = set(QueueState.objects.filter(paused=True).values_list("name", flat=True))
    queues.sync_paused(paused)


def _known_queue(name: str) -> None:
    if name not in settings.JOB_QUEUES:
        raise InvalidInput.one(
            "queue", f"unknown queue {name!r} (known: {', '.join(settings.JOB_QUEUES)})"
        )


@transaction.atomic
def queue_set_paused(
    *,
    name: str,
    paused: bool,
    actor: Any,
    reason: str = "",
    origin: str = Origin.CODE,
) -> QueueState:
    """Pause a queue (its workers take no new job; running ones finish) or
    resume it: the database first, Redis (which workers read) on commit."""
    _known_queue(name)
    state, _ = QueueState.objects.select_for_update().get_or_create(name=name)
    state.paused = paused
    state.paused_by = acting_user(actor) if paused else None
    state.paused_at = timezone.now() if paused else None
    state.reason = reason[:500] if paused else ""
    state.save()
    transaction.on_commit(lambda: queues.set_paused(name, paused))
    audit(
        actor=actor,
        action="pause" if paused else "resume",
        target=f"queue {name}",
        count=1,
        reason=reason,
        origin=origin,
    )
    return state


queue_pause = partial(queue_set_paused, paused=True)
queue_resume = partial(queue_set_paused, paused=False)
