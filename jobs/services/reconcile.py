"""Reconciliation: find and repair any difference between the database and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.backend import live, queueing
from jobs.backend.lease import JOB_MONITORING_INTERVAL
from jobs.backend.recovery import abandoned_by_rq, adopt_abandoned
from jobs.backend.refusals import refuse_now
from jobs.models import JobEvent, JobRecord
from jobs.processes.recorder import JOB_ID_LENGTH, Recorder, foreign_record
from jobs.processes.recorder_handlers import fingerprint
from jobs.services import transitions

Status = JobRecord.Status
#: What the database may say for each RQ status.
AGREES: dict[str | None, tuple[str, ...]] = {
    # RQ moves jobs from its scheduled and deferred registries (and immediate
    # retries) to the queue without telling us; all of these are "waiting".
    "queued": (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.RETRYING),
    # Canceled while it runs: the stop (or its lost worker's recovery) is on
    # its way.
    "started": (Status.STARTED, Status.CANCELED),
    "scheduled": (Status.SCHEDULED, Status.RETRYING),
    "deferred": (Status.DEFERRED,),
    # The cancel's claim won, and the job's own end raced in after it.
    "finished": (Status.SUCCEEDED, Status.CANCELED),
    # Canceled while it ran: its worker stopped it (or it failed first).
    "failed": (Status.DEAD, Status.CANCELED),
    "stopped": (Status.DEAD, Status.CANCELED),
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
#: Final, but not a success: a repair may still take Redis's word for these.
FINAL = transitions.FINAL & transitions.REPAIRABLE
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
#: The database's side of a job another client wrote that has no record yet.
NO_RECORD = "no record"
#: RQ's own clean-up failed a dead worker's job, with no retry and no history.
ABANDONED = "failed by RQ as abandoned"


def find_differences(settle: float = 0.0) -> list[Difference]:
    """Every unfinished job whose state differs between the database and
    Redis, and (with `settle` > 0) every job stranded outside any queue."""
    found: list[Difference] = []
    waiting = live.queued_ids(settings.JOB_QUEUES)
    suspects: dict[str, str] = {}
    for chunk in _unfinished_ids():
        seen = live.examine_jobs([pk for pk, _ in chunk])
        in_redis = {pk: job.status for pk, job in seen.items()}
        abandoned = set(
            abandoned_by_rq(
                [
                    pk
                    for pk, status in chunk
                    if in_redis.get(pk) == "failed" and status not in FINAL
                ]
            )
        )
        for pk, status in chunk:
            rq_status = in_redis.get(pk)
            if rq_status == "queued" and pk not in waiting:
                suspects[pk] = status
            if pk in abandoned:
                found.append(Difference(pk, status, ABANDONED, "recover"))
                continue
            unreadable = _unreadable(seen.get(pk))
            if unreadable:
                found.append(Difference(pk, status, unreadable, "refuse"))
                continue
            if status in AGREES.get(rq_status, ()):
                continue
            repair = REPAIR.get(rq_status or "", "re-enqueue")
            found.append(Difference(pk, status, rq_status, repair))
    found += find_foreign()
    if settle > 0 and suspects:
        # A job just popped by a live worker is also briefly in no queue; it
        # is "started" a moment later. Only a job still in limbo is stranded.
        time.sleep(settle)
        for pk in live.still_stranded(list(suspects)):
            found.append(Difference(pk, suspects[pk], STRANDED, "requeue"))
    return found


def _unreadable(job: live.SeenJob | None) -> str | None:
    """What a worker would refuse this job for, unless it already was."""
    if job is None or not job.verdict.reason or job.status in ("failed", "stopped"):
        return None
    return f"{job.status}, unreadable: {job.verdict.reason}"


def find_foreign() -> list[Difference]:
    """Jobs in our queues' lists and registries that another client wrote
    and that have no record yet (a worker records them when it refuses
    them; one that no worker met, or that another client's worker ran, is
    found here). Jobs of ours with no record (purged history) are not."""
    ids = live.job_ids_in_redis(settings.JOB_QUEUES)
    recorded: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        recorded.update(
            JobRecord.objects.filter(pk__in=chunk).values_list("pk", flat=True)
        )
    seen = live.examine_jobs([i for i in ids if i not in recorded])
    return [
        Difference(
            job.job_id, NO_RECORD, f"{job.status}, {job.verdict.reason}", "record"
        )
        for job in seen.values()
        if job.verdict.reason and len(job.job_id) <= JOB_ID_LENGTH
    ]


def _record_foreign(job_ids: list[str]) -> set[str]:
    """Record foreign jobs as Redis holds them now (status, failure); returns
    the ids that have a record now."""
    records = [_foreign(job) for job in live.examine_jobs(job_ids).values()]
    JobRecord.objects.bulk_create(records, ignore_conflicts=True)
    return set(JobRecord.objects.filter(pk__in=job_ids).values_list("pk", flat=True))


def _foreign(job: live.SeenJob) -> JobRecord:
    record = foreign_record(
        job.job_id,
        time.time(),
        {
            "function": job.verdict.function,
            "queue": job.queue,
            "arguments": job.verdict.arguments,
            "created": job.created.timestamp() if job.created else None,
        },
    )
    record.status = FOREIGN_STATUS.get(job.status or "", Status.DEAD)
    if record.status == Status.DEAD:
        record.error_type = job.verdict.exc_type
        # The last line of another worker's traceback is its exception.
        lines = [line for line in job.error.splitlines() if line.strip()]
        record.last_error = lines[-1] if lines else job.verdict.reason
        record.error_fingerprint = fingerprint(
            record.task, record.error_type, record.last_error
        )
        record.finished_at = timezone.now()
    return record


#: Repairs done in Redis after commit; the events they send set the status.
IN_REDIS = {
    "requeue": live.requeue_stranded,
    "recover": adopt_abandoned,
    "refuse": refuse_now,
}
#: Repairs that are a status of their own name (the others are Redis's).
STATUS_REPAIRS = {"requeue": Status.QUEUED, "re-enqueue": transitions.INITIAL}
#: A foreign job's status in its new record, from Redis's.
FOREIGN_STATUS = {**REPAIR, "queued": Status.QUEUED}


@transaction.atomic
def _repair(differences: list[Difference]) -> None:
    now = timezone.now()
    for repair, act in IN_REDIS.items():
        ids = [d.job_id for d in differences if d.repair == repair]
        if ids:
            transaction.on_commit(partial(act, ids))
    recorded = _record_foreign([d.job_id for d in differences if d.repair == "record"])
    for diff in differences:
        if diff.repair == "record" and diff.job_id not in recorded:
            continue  # gone from Redis meanwhile: nothing to record
        if diff.repair not in ("recover", "refuse", "record"):
            new_status = STATUS_REPAIRS.get(diff.repair, diff.repair)
            # Only if the record still says what was compared: one the
            # recorder moved on meanwhile is compared again next time.
            moved = transitions.move(
                [diff.job_id], new_status, among={diff.database}, repair=True
            )
            if not moved:
                continue
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
    differences = still_lost(find_differences(settle=STRANDED_SETTLE), LOST_SETTLE)
    if repair and differences:
        _repair(differences)
    return differences


def stranded_sweep(suspects: set[str]) -> tuple[list[Difference], set[str]]:
    """The monitor's guard against lost jobs, in two passes and no sleeping.
    A job seen in limbo on two sweeps in a row is repaired: "queued" in no
    queue (its worker died right after popping it) goes back to the head of
    its lane; failed by RQ's own abandoned-job clean-up is recovered as a
    lost attempt. Returns (repairs, suspects for next time).
    """
    waiting = live.queued_ids(settings.JOB_QUEUES)
    rows = (
        JobRecord.objects.filter(
            status__in=transitions.UNFINISHED - {transitions.INITIAL}
        )
        .values_list("pk", "status")
        .order_by("pk")
    )
    found: dict[str, str] = {}
    missing: set[str] = set()  # unfinished here, unknown to Redis (issue 20)
    rows_now = list(rows[:100_000])  # a sweep's bound; the next sweep sees the rest
    for start in range(0, len(rows_now), CHUNK):
        chunk = rows_now[start : start + CHUNK]
        statuses = queueing.statuses(pk for pk, _ in chunk)
        found.update(
            (pk, status)
            for pk, status in chunk
            if statuses.get(pk) == "failed"
            or (statuses.get(pk) == "queued" and pk not in waiting)
        )
        missing.update(pk for pk, _ in chunk if statuses.get(pk) is None)
    found.update((pk, status) for pk, status in rows_now if pk in missing)
    seen_twice = sorted(set(found) & suspects)
    stranded = live.still_stranded(seen_twice)
    abandoned = abandoned_by_rq(
        [pk for pk in seen_twice if pk not in stranded and pk not in missing]
    )
    repairs = [Difference(pk, found[pk], STRANDED, "requeue") for pk in stranded]
    repairs += [Difference(pk, found[pk], ABANDONED, "recover") for pk in abandoned]
    repairs += lost_for_good([pk for pk in seen_twice if pk in missing], found)
    if repairs:
        _repair(repairs)
    return repairs, set(found) - {d.job_id for d in repairs}


# -- Jobs a Redis failover lost (issue 20) -------------------------------------
# Replication to a replica is asynchronous: a job the primary acknowledged in
# the last moment before it died may be missing on the promoted replica. The
# database still has it, so it is enqueued again (back to `pending`, and the
# outbox relay puts it in Redis under the usual claim). A job that is in fact
# running, its hash lost, is left alone: its worker's heartbeat writes its
# execution back to the new primary within JOB_MONITORING_INTERVAL.

#: Seconds between the two looks at a job Redis lacks: longer than a running
#: job's heartbeat interval (see jobs/backend/lease.py).
LOST_SETTLE = JOB_MONITORING_INTERVAL + 1.0


def _gone(job_ids: list[str]) -> set[str]:
    """Of these, the jobs Redis has neither a hash nor a live execution for."""
    present = queueing.existing(job_ids) | queueing.executing(job_ids)
    return set(job_ids) - present


def still_lost(differences: list[Difference], settle: float) -> list[Difference]:
    """`differences` less the jobs Redis lacked that turn out to be running
    (or back) on a second look after `settle` seconds."""
    lost = [d.job_id for d in differences if d.redis is None]
    if not lost:
        return differences
    time.sleep(settle)
    gone = _gone(lost)
    return [d for d in differences if d.redis is not None or d.job_id in gone]


def lost_for_good(job_ids: list[str], statuses: dict[str, str]) -> list[Difference]:
    """The monitor's second look (a sweep after the one that first missed
    them): jobs still missing and not running go back to the outbox."""
    gone = sorted(_gone(job_ids))
    return [Difference(pk, statuses[pk], None, "re-enqueue") for pk in gone]
