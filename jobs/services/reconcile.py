"""Reconciliation: find and repair any difference between the database and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs import queueing
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


def find_differences() -> list[Difference]:
    found: list[Difference] = []
    for chunk in _unfinished_ids():
        in_redis = queueing.statuses(pk for pk, _ in chunk)
        for pk, status in chunk:
            rq_status = in_redis.get(pk)
            if status in AGREES.get(rq_status, ()):
                continue
            repair = REPAIR.get(rq_status or "", "re-enqueue")
            found.append(Difference(pk, status, rq_status, repair))
    return found


@transaction.atomic
def _repair(differences: list[Difference]) -> None:
    now = timezone.now()
    for diff in differences:
        new_status = Status.PENDING if diff.repair == "re-enqueue" else diff.repair
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
    differences = find_differences()
    if repair and differences:
        _repair(differences)
    return differences
