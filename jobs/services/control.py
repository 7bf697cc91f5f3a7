"""Operator actions on jobs and queues: retry, cancel, pause, resume.

Every action leaves one OperatorAction row (who, what, how many, why) whichever
front door it came through, and one timeline event per job it touched.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.backend import live, queueing
from jobs.models import (
    JobDependency,
    JobEvent,
    JobRecord,
    OperatorAction,
    Origin,
)
from jobs.services.submit import enqueue_records, spec_for
from jobs.services.validation import InvalidInput

log = logging.getLogger("jobs.services")
Status = JobRecord.Status

#: Bulk actions work through ids in chunks of this size: one SELECT, one
#: UPDATE and one Redis pipeline per chunk keeps memory flat at any volume.
CHUNK = 500
#: The most jobs one bulk action touches (shown to the operator): a runaway
#: filter cannot rewrite the whole history in one request.
BULK_CAP = 100_000
RETRYABLE = (Status.DEAD, Status.CANCELED)
CANCELABLE = (
    Status.PENDING,
    Status.QUEUED,
    Status.SCHEDULED,
    Status.DEFERRED,
    Status.RETRYING,
)


@dataclass
class BulkResult:
    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add_skipped(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def summary(self, verb: str) -> str:
        text = f"{verb} {self.done} job{'s' if self.done != 1 else ''}"
        if self.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in self.skipped.items())
            text += f"; {sum(self.skipped.values())} skipped: {reasons}"
        return text


def acting_user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None


def audit(
    *,
    actor: Any,
    action: str,
    target: str,
    count: int,
    reason: str = "",
    origin: str = Origin.CODE,
    **detail: Any,
) -> OperatorAction:
    user = acting_user(actor)
    entry = OperatorAction.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "system",
        action=action,
        target=target[:300],
        count=count,
        reason=reason[:500],
        origin=origin,
        detail=detail,
        at=timezone.now(),
    )
    log.info(
        "operator action",
        extra={
            "action": action,
            "target": target,
            "count": count,
            "actor": entry.actor_name,
            "origin": origin,
            "reason": reason,
        },
    )
    return entry


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    chunk: list[str] = []
    for n, job_id in enumerate(ids):
        if n >= BULK_CAP:
            break
        chunk.append(job_id)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bulk(
    *,
    action: str,
    ids: Iterable[str],
    actor: Any,
    origin: str,
    reason: str,
    target: str,
    handle: Callable[[list[str], BulkResult], None],
) -> BulkResult:
    """One transaction, chunk by chunk, and one operator-log row, for every
    bulk action. An empty selection does nothing and logs nothing."""
    result = BulkResult()
    with transaction.atomic():
        touched = False
        for chunk in _chunks(ids):
            touched = True
            handle(chunk, result)
        if touched:
            audit(
                actor=actor,
                action=action,
                target=target or "jobs",
                count=result.done,
                reason=reason,
                origin=origin,
                skipped=dict(result.skipped),
            )
    return result


def _timeline(records: list[JobRecord], kind: str, actor: Any, message: str) -> None:
    now = timezone.now()
    JobEvent.objects.bulk_create(
        [
            JobEvent(
                job=r, kind=kind, at=now, actor=acting_user(actor), message=message
            )
            for r in records
        ]
    )


def _lock_applicable(
    ids: list[str], allowed: tuple[str, ...], result: BulkResult
) -> list[JobRecord]:
    """Lock a chunk's records; count those the action does not apply to."""
    records = list(JobRecord.objects.select_for_update().filter(pk__in=ids))
    for status, count in Counter(
        r.status for r in records if r.status not in allowed
    ).items():
        result.add_skipped(f"already {Status(status).label.lower()}", count)
    result.add_skipped("not found", len(ids) - len(records))
    return [r for r in records if r.status in allowed]


def _retry_chunk(ids: list[str], actor: Any, reason: str, result: BulkResult) -> None:
    ready = _lock_applicable(ids, RETRYABLE, result)
    # Another RQ client's job names no task of ours: there is nothing to run.
    foreign = [r for r in ready if r.origin == Origin.FOREIGN]
    result.add_skipped("written by another RQ client", len(foreign))
    ready = [r for r in ready if r.origin != Origin.FOREIGN]
    if not ready:
        return
    JobRecord.objects.filter(pk__in=[r.pk for r in ready]).update(
        status=Status.PENDING, finished_at=None, next_attempt_at=None
    )
    _timeline(ready, JobEvent.Kind.RETRIED, actor, reason or "retried by an operator")
    parents: dict[str, list[tuple[str, bool]]] = {}
    for child, parent, allow in JobDependency.objects.filter(
        child_id__in=[r.pk for r in ready]
    ).values_list("child_id", "parent_id", "allow_failure"):
        parents.setdefault(child, []).append((parent, allow))
    specs = []
    for record in ready:
        links = parents.get(record.pk, [])
        spec = spec_for(record, [p for p, _ in links], any(a for _, a in links))
        spec.run_at = None
        spec.replace = True
        spec.attempt_offset = record.attempts
        specs.append(spec)
    transaction.on_commit(lambda: enqueue_records(specs))
    result.done += len(ready)


def jobs_retry(
    *,
    ids: Iterable[str],
    actor: Any,
    origin: str = Origin.CODE,
    reason: str = "",
    target: str = "",
) -> BulkResult:
    """Run dead or canceled jobs again, with a fresh set of attempts."""
    return _bulk(
        action="retry",
        ids=ids,
        actor=actor,
        origin=origin,
        reason=reason,
        target=target,
        handle=lambda chunk, result: _retry_chunk(chunk, actor, reason, result),
    )


def _cancel_chunk(ids: list[str], actor: Any, reason: str, result: BulkResult) -> None:
    candidates = _lock_applicable(ids, CANCELABLE, result)
    if not candidates:
        return
    stopped = queueing.cancel(r.pk for r in candidates)
    canceled = [r for r in candidates if r.pk in stopped]
    result.add_skipped("already running", len(candidates) - len(canceled))
    JobRecord.objects.filter(pk__in=[r.pk for r in canceled]).update(
        status=Status.CANCELED, finished_at=timezone.now(), next_attempt_at=None
    )
    _timeline(
        canceled, JobEvent.Kind.CANCELED, actor, reason or "canceled by an operator"
    )
    result.done += len(canceled)


def jobs_cancel(
    *,
    ids: Iterable[str],
    actor: Any,
    origin: str = Origin.CODE,
    reason: str = "",
    target: str = "",
) -> BulkResult:
    """Cancel jobs that have not started; running jobs are skipped."""
    return _bulk(
        action="cancel",
        ids=ids,
        actor=actor,
        origin=origin,
        reason=reason,
        target=target,
        handle=lambda chunk, result: _cancel_chunk(chunk, actor, reason, result),
    )


def _delete_chunk(ids: list[str], actor: Any, result: BulkResult) -> None:
    records = list(JobRecord.objects.select_for_update().filter(pk__in=ids))
    result.add_skipped("not found", len(ids) - len(records))
    running = [r for r in records if r.status == Status.STARTED]
    result.add_skipped("running", len(running))
    doomed = [r.pk for r in records if r.status != Status.STARTED]
    if not doomed:
        return
    transaction.on_commit(lambda: live.delete(doomed))
    JobRecord.objects.filter(pk__in=doomed).delete()
    result.done += len(doomed)


def jobs_delete(
    *,
    ids: Iterable[str],
    actor: Any,
    origin: str = Origin.CODE,
    reason: str = "",
    target: str = "",
) -> BulkResult:
    """Delete jobs and their history; running jobs are skipped."""
    return _bulk(
        action="delete",
        ids=ids,
        actor=actor,
        origin=origin,
        reason=reason,
        target=target,
        handle=lambda chunk, result: _delete_chunk(chunk, actor, result),
    )


@transaction.atomic
def job_run_now(*, record: JobRecord, actor: Any, origin: str = Origin.CODE) -> bool:
    """Run a delayed or retry-waiting job now, ahead of its queue."""
    moved = live.run_now(record.pk)
    if moved:
        _timeline([record], JobEvent.Kind.ENQUEUED, actor, "run now by an operator")
    audit(
        actor=actor,
        action="run_now",
        target=f"job {record.pk}",
        count=int(moved),
        origin=origin,
    )
    return moved


def job_retry(
    *, record: JobRecord, actor: Any, origin: str = Origin.CODE, reason: str = ""
) -> BulkResult:
    return jobs_retry(
        ids=[record.pk],
        actor=actor,
        origin=origin,
        reason=reason,
        target=f"job {record.pk}",
    )


def job_cancel(
    *, record: JobRecord, actor: Any, origin: str = Origin.CODE, reason: str = ""
) -> BulkResult:
    return jobs_cancel(
        ids=[record.pk],
        actor=actor,
        origin=origin,
        reason=reason,
        target=f"job {record.pk}",
    )


#: Purge deletes in batches: each is one short transaction, so the workers'
#: recorder is never blocked for long and memory stays flat.
PURGE_BATCH = 1000


def history_purge(
    *,
    older_than_days: float,
    actor: Any,
    origin: str = Origin.CODE,
    progress: Any = None,
) -> int:
    """Delete finished jobs (succeeded, dead, canceled) older than the cut-off,
    with their attempts and timelines. `progress(done, total)` is called
    after each batch."""
    if older_than_days < 0:
        raise InvalidInput.one("older_than", "must be zero or more days")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = JobRecord.objects.filter(
        status__in=JobRecord.FINAL_STATUSES, finished_at__lt=cutoff
    )
    total = old.count()
    done = 0
    while True:
        with transaction.atomic():
            ids = list(old.values_list("pk", flat=True)[:PURGE_BATCH])
            if not ids:
                break
            JobRecord.objects.filter(pk__in=ids).delete()
        done += len(ids)
        if progress is not None:
            progress(done, total)
    audit(
        actor=actor,
        action="purge",
        target=f"history older than {older_than_days} days",
        count=done,
        origin=origin,
    )
    return done
