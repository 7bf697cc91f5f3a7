"""Reconciliation: find and repair any difference between the database and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import live, queueing
from jobs.models import JobEvent, JobRecord
from jobs.recorder import Recorder

Status = JobRecord.Status
#: What the database may say for each RQ status.
AGREES: dict[str | None, tuple[str, ...]] = {
    # RQ moves jobs from its scheduled and deferred registries (and immediate
    # retries) to the queue without telling us; all of these are "waiting".
    "queued": (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.RETRYING),
    "started": (Status.STARTED,),
    "scheduled": (Status.SCHEDULED, Status.RETRYING),
    "deferred": (Status.DEFERRED,),
    "finished": (Status.SUCCEEDED,),
    "failed": (Status.DEAD,),
    "stopped": (Status.DEAD,),
    "canceled": (Status.CANCELED,),
    None: (Status.PENDING, Status.SUCCEEDED, Status.DEAD, Status.CANCELED),
}
#: The database status to repair to, from Redis's.
REPAIR = {
    "queued": Status.QUEUED,
    "started": Status.STARTED,
    "scheduled": Status.SCHEDULED,
    "deferred": Status.DEFERRED,
    "finished": Status.SUCCEEDED,
    "failed": Status.DEAD,
    "stopped": Status.DEAD,
    "canceled": Status.CANCELED,
}
CHUNK = 1000
#: Seconds between spotting a job in no queue and calling it stranded.
STRANDED_SETTLE = 2.0


@dataclass(frozen=True)
class Difference:
    job_id: str
    database: str
    redis: str | None
    repair: str


def _unfinished_ids() -> Iterator[list[tuple[str, str]]]:
    rows = (
        JobRecord.objects.exclude(status=Status.SUCCEEDED)
        .values_list("pk", "status")
        .order_by("pk")
    )
    last = ""
    while True:
        chunk = list(rows.filter(pk__gt=last)[:CHUNK])
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


STRANDED = "queued, in no queue"


def find_differences(settle: float = 0.0) -> list[Difference]:
    """Every unfinished job whose state differs between the database and
    Redis, and (with `settle` > 0) every job stranded outside any queue."""
    found: list[Difference] = []
    waiting = live.queued_ids(settings.JOB_QUEUES)
    suspects: dict[str, str] = {}
    for chunk in _unfinished_ids():
        in_redis = queueing.statuses(pk for pk, _ in chunk)
        for pk, status in chunk:
            rq_status = in_redis.get(pk)
            if rq_status == "queued" and pk not in waiting:
                suspects[pk] = status
            if status in AGREES.get(rq_status, ()):
                continue
            repair = REPAIR.get(rq_status or "", "re-enqueue")
            found.append(Difference(pk, status, rq_status, repair))
    if settle > 0 and suspects:
        # A job just popped by a live worker is also briefly in no queue; it
        # is "started" a moment later. Only a job still in limbo is stranded.
        time.sleep(settle)
        for pk in live.still_stranded(list(suspects)):
            found.append(Difference(pk, suspects[pk], STRANDED, "requeue"))
    return found


@transaction.atomic
def _repair(differences: list[Difference]) -> None:
    now = timezone.now()
    stranded = [d.job_id for d in differences if d.repair == "requeue"]
    if stranded:
        transaction.on_commit(lambda: live.requeue_stranded(stranded))
    for diff in differences:
        new_status: str = {"requeue": Status.QUEUED, "re-enqueue": Status.PENDING}.get(
            diff.repair, diff.repair
        )
        JobRecord.objects.filter(pk=diff.job_id).update(status=new_status)
        JobEvent.objects.create(
            job_id=diff.job_id,
            kind=JobEvent.Kind.RECONCILED,
            at=now,
            message=f"database said {diff.database}, Redis said "
            f"{diff.redis or 'nothing'}: {diff.repair}",
        )


def reconcile(*, repair: bool) -> list[Difference]:
    """Apply recorded events first, then compare every unfinished job.

    Repairs take Redis's word for a job it knows; a job Redis lost (no AOF,
    a flushed server) goes back to `pending` and the outbox relay enqueues it.
    """
    Recorder().drain_all()
    differences = find_differences(settle=STRANDED_SETTLE)
    if repair and differences:
        _repair(differences)
    return differences


def stranded_sweep(suspects: set[str]) -> tuple[list[str], set[str]]:
    """The monitor's guard against lost jobs, in two passes and no sleeping:
    a job Redis calls "queued" that sits in no queue on two sweeps in a row is
    put back at the head of its lane. Returns (requeued, suspects for next time).
    """
    waiting = live.queued_ids(settings.JOB_QUEUES)
    rows = (
        JobRecord.objects.filter(
            status__in=[
                Status.QUEUED,
                Status.RETRYING,
                Status.SCHEDULED,
                Status.DEFERRED,
            ]
        )
        .values_list("pk", flat=True)
        .order_by("pk")
    )
    found: set[str] = set()
    ids = list(rows[:100_000])  # a sweep's bound; the next sweep sees the rest
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        statuses = queueing.statuses(chunk)
        found.update(
            pk for pk in chunk if statuses.get(pk) == "queued" and pk not in waiting
        )
    confirmed = live.still_stranded(sorted(found & suspects))
    if confirmed:
        _repair(
            [Difference(pk, Status.QUEUED, STRANDED, "requeue") for pk in confirmed]
        )
    return confirmed, found - set(confirmed)
