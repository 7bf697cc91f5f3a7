"""Submission: the one path by which every front door creates jobs.

The job record is written first (status `pending`) and put into Redis only
after the surrounding transaction commits: a transactional outbox. If Redis is
unreachable the record stays `pending` and the monitor's outbox relay enqueues
it once Redis answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from jobs.backend import queueing
from jobs.backend.errors import BackendError
from jobs.models import JobDependency, JobEvent, JobRecord, Origin
from jobs.services import transitions
from jobs.services.rows import insert_records
from jobs.services.validation import (
    InvalidSubmission,
    SubmitRequest,
    UnknownReference,
    Valid,
    check_idempotency_key,
    validate,
)

log = logging.getLogger("jobs.services")

#: A submission of up to this many jobs marks them enqueued at once (someone
#: may open a job's page right away); a larger bulk leaves that to the
#: recorder, which does it from the jobs' "enqueued" events a moment later:
#: a second write of every row would cost a bulk of 10,000 about 6 %.
MARK_AT_ONCE_UP_TO = 100
#: One bulk submission is capped: memory for the records and one Redis
#: pipeline per thousand jobs.
MAX_BULK = 50_000


def _check_parents(valid: list[Valid]) -> dict[str, str]:
    wanted = {p for v in valid for p in v.depends_on}
    if not wanted:
        return {}
    found = dict(JobRecord.objects.filter(pk__in=wanted).values_list("pk", "status"))
    found.update({v.record.pk: v.record.status for v in valid})
    missing = sorted(wanted - found.keys())
    if missing:
        raise UnknownReference.one("depends_on", f"no such job: {', '.join(missing)}")
    return found


def spec_for(
    record: JobRecord,
    depends_on: list[str],
    allow_failure: bool,
) -> queueing.EnqueueSpec:
    return queueing.EnqueueSpec(
        id=record.pk,
        task=record.task,
        payload=record.payload,
        queue=record.queue,
        priority=record.priority,
        timeout=record.timeout,
        policy=record.retry_policy,
        run_at=record.run_at,
        depends_on=depends_on,
        allow_failure=allow_failure,
        # A job the relay enqueues after an operator's retry goes on with its
        # numbering, and claims the same retry round as the retry itself.
        attempt_offset=record.attempts,
    )


def enqueue_records(specs: list[queueing.EnqueueSpec]) -> bool:
    """Put jobs into Redis; False (and the jobs stay pending) if Redis is down."""
    try:
        queueing.enqueue(specs)
    except BackendError as exc:
        log.warning(
            "redis unavailable; %d job(s) kept pending in the outbox",
            len(specs),
            extra={"error": repr(exc), "jobs": len(specs)},
        )
        return False
    return True


def _mark_enqueued(valid: list[Valid]) -> None:
    """Say at once that the jobs left the outbox (the recorder would, a moment
    later): a job page opened right after submitting must not read "pending".
    One conditional UPDATE per status (and chunk): only a job still pending
    moves, so a recorder that got there first is never overwritten.

    Best effort: the jobs are committed and in Redis by now, and the recorder
    sets the same status from their "enqueued" events. A failure here (a
    lock timeout against the recorder's batch) must not tell the caller that
    its submission failed: it would submit it again.
    """
    by_status: dict[str, list[str]] = {}
    for v in valid:
        by_status.setdefault(v.record.status, []).append(v.record.pk)
    try:
        for status, ids in by_status.items():
            transitions.move(ids, status, among={transitions.INITIAL})
    except DatabaseError as exc:
        log.warning(
            "submitted jobs left for the recorder to mark enqueued",
            extra={"jobs": len(valid), "error": str(exc)},
        )


def _after_commit(valid: list[Valid]) -> None:
    specs = [spec_for(v.record, v.depends_on, v.allow_failure) for v in valid]
    if enqueue_records(specs):
        for v in valid:
            transitions.step(
                v.record,
                JobRecord.Status.SCHEDULED
                if v.record.run_at
                else JobRecord.Status.DEFERRED
                if v.depends_on
                else JobRecord.Status.QUEUED,
            )
        if len(valid) <= MARK_AT_ONCE_UP_TO:
            _mark_enqueued(valid)
    _log_submitted([v.record for v in valid])


def _log_submitted(records: list[JobRecord]) -> None:
    """One line per submission: a bulk of 10,000 is one operation, and a line
    per job would cost more than writing the jobs."""
    first = records[0]
    if len(records) == 1:
        log.info(
            "job submitted",
            extra={
                "job_id": first.pk,
                "task": first.task,
                "queue": first.queue,
                "priority": first.priority,
                "status": first.status,
            },
        )
        return
    log.info(
        "jobs submitted",
        extra={
            "jobs": len(records),
            "tasks": sorted({r.task for r in records}),
            "queues": sorted({r.queue for r in records}),
            "statuses": sorted({r.status for r in records}),
            "first_job_id": first.pk,
            "last_job_id": records[-1].pk,
        },
    )


def _blocked_events(
    valid: list[Valid], statuses: dict[str, str], now: datetime
) -> list[JobEvent]:
    blocked = []
    for v in valid:
        dead = [p for p in v.depends_on if statuses.get(p) == JobRecord.Status.DEAD]
        if dead and not v.allow_failure:
            v.record.last_error = f"waiting on dependency {dead[0]}, which is dead"
            blocked.append(
                JobEvent(
                    job=v.record,
                    kind=JobEvent.Kind.BLOCKED,
                    at=now,
                    message=v.record.last_error,
                )
            )
    return blocked


@transaction.atomic
def job_submit_many(
    *, requests: Iterable[SubmitRequest], actor: Any = None, origin: str = Origin.CODE
) -> list[JobRecord]:
    """Validate every request, then write all records; all or nothing."""
    now = timezone.now()
    valid = [validate(r, now) for r in requests]
    if len(valid) > MAX_BULK:
        raise InvalidSubmission.one(
            "jobs", f"at most {MAX_BULK} jobs in one submission"
        )
    statuses = _check_parents(valid)
    user = actor if getattr(actor, "is_authenticated", False) else None
    for v in valid:
        v.record.origin = origin
        v.record.submitted_by = user
    blocked = _blocked_events(valid, statuses, now)
    insert_records([v.record for v in valid])
    JobDependency.objects.bulk_create(
        [
            JobDependency(child=v.record, parent_id=p, allow_failure=v.allow_failure)
            for v in valid
            for p in v.depends_on
        ],
        batch_size=1000,
    )
    JobEvent.objects.bulk_create(blocked)
    transaction.on_commit(lambda: _after_commit(valid))
    return [v.record for v in valid]


def job_submit(
    *,
    task: str,
    payload: Any = None,
    queue: str | None = None,
    priority: str | None = None,
    delay: float | None = None,
    run_at: datetime | None = None,
    depends_on: Sequence[str] = (),
    allow_failure: bool = False,
    idempotency_key: str | None = None,
    retry: dict[str, Any] | None = None,
    timeout: int | None = None,
    actor: Any = None,
    origin: str = Origin.CODE,
) -> JobRecord:
    """Submit one job. With an idempotency key already used, returns that job."""
    request = SubmitRequest(
        task=task,
        payload=payload,
        queue=queue,
        priority=priority,
        delay=delay,
        run_at=run_at,
        depends_on=depends_on,
        allow_failure=allow_failure,
        idempotency_key=idempotency_key,
        retry=retry,
        timeout=timeout,
    )
    if check_idempotency_key(idempotency_key):
        existing = JobRecord.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    try:
        # job_submit_many's own atomic block rolls back alone (a savepoint
        # inside the caller's transaction) if the key was taken meanwhile.
        return job_submit_many(requests=[request], actor=actor, origin=origin)[0]
    except IntegrityError:
        existing = JobRecord.objects.filter(idempotency_key=idempotency_key).first()
        if idempotency_key and existing is not None:
            return existing  # a concurrent submission with the same key won
        raise


def outbox_relay(*, grace_seconds: float = 5.0, limit: int = 1000) -> int:
    """Enqueue jobs left `pending` (Redis was down when they were committed).

    Only records older than the grace period are considered, so a submission
    whose after-commit enqueue is still in flight is not enqueued twice; a job
    whose hash already exists in Redis is never enqueued again.
    """
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    records = list(
        JobRecord.objects.filter(
            status=transitions.INITIAL,
            submitted_at__lt=cutoff,
        ).order_by("submitted_at")[:limit]
    )
    if not records:
        return 0
    in_redis = queueing.existing(r.pk for r in records)
    todo = [r for r in records if r.pk not in in_redis]
    parents: dict[str, list[tuple[str, bool]]] = {}
    for child_id, parent_id, allow in JobDependency.objects.filter(
        child_id__in=[r.pk for r in todo]
    ).values_list("child_id", "parent_id", "allow_failure"):
        parents.setdefault(child_id, []).append((parent_id, allow))
    specs = [
        spec_for(
            r,
            [p for p, _ in parents.get(r.pk, [])],
            any(a for _, a in parents.get(r.pk, [])),
        )
        for r in todo
    ]
    if specs and enqueue_records(specs):
        log.info("outbox relay enqueued pending jobs", extra={"jobs": len(specs)})
        return len(specs)
    return 0
