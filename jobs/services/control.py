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
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.backend import cancels, live
from jobs.models import (
    JobDependency,
    JobEvent,
    JobRecord,
    OperatorAction,
    Origin,
)
from jobs.services import transitions
from jobs.services.submit import enqueue_records, spec_for
from jobs.services.validation import InvalidInput

log = logging.getLogger("jobs.services")

#: Bulk actions work through ids in chunks of this size: one SELECT, one
#: UPDATE and one Redis pipeline per chunk keeps memory flat at any volume.
CHUNK = 500
#: The most jobs one bulk action touches (shown to the operator): a runaway
#: filter cannot rewrite the whole history in one request.
BULK_CAP = 100_000


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


@dataclass(frozen=True)
class Step:
    """What one chunk of an action works on: the locked records it applies
    to, who asked, why, and the result to count into."""

    records: list[JobRecord]
    actor: Any
    reason: str
    result: BulkResult


@dataclass(frozen=True)
class JobAction:
    """An operator action on jobs: the statuses it applies to (from
    services.transitions), what it does to a chunk of them, the verb of its
    summary, and how it names a status it skips ("already canceled")."""

    name: str
    verb: str
    applies_to: frozenset[str]
    run: Callable[[Step], None]
    skip: str = "already {}"


def _retry(step: Step) -> None:
    # Another RQ client's job names no task of ours: there is nothing to run.
    foreign = [r for r in step.records if r.origin == Origin.FOREIGN]
    step.result.add_skipped("written by another RQ client", len(foreign))
    moved = transitions.move(
        [r.pk for r in step.records if r.origin != Origin.FOREIGN],
        transitions.INITIAL,  # back to the outbox, enqueued on commit
        among=transitions.RETRYABLE,
        finished_at=None,
        next_attempt_at=None,
    )
    ready = [r for r in step.records if r.pk in moved]
    if not ready:
        return
    _timeline(
        ready,
        JobEvent.Kind.RETRIED,
        step.actor,
        step.reason or "retried by an operator",
    )
    parents: dict[str, list[tuple[str, bool]]] = {}
    for child, parent, allow in JobDependency.objects.filter(
        child_id__in=moved
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
    step.result.done += len(ready)


def _cancel(step: Step, *, stop: bool = True) -> None:
    """Waiting jobs leave Redis; running ones (or ones the database still
    thinks wait, that a worker took meanwhile) are claimed and stopped by the
    backend, whose claim decides against the job's own end: a job that ended
    first is skipped ("already finished") and keeps its outcome."""
    waiting = [r for r in step.records if r.status in transitions.WAITING]
    taken = cancels.cancel(r.pk for r in waiting)
    running = [r for r in step.records if r.pk not in taken] if stop else []
    who = _actor_name(step.actor)
    stops = {r.pk: cancels.stop_running(r.pk, by=who).outcome for r in running}
    # Back in its queue meanwhile (a retry the history has not seen yet).
    taken |= cancels.cancel(
        pk for pk, outcome in stops.items() if outcome in REDIS_WAITING
    )
    moved = transitions.move(
        [
            r.pk
            for r in step.records
            if r.pk in taken or stops.get(r.pk) in ("stopping", "gone")
        ],
        JobRecord.Status.CANCELED,
        among=transitions.CANCELABLE,
        stop=True,
        finished_at=timezone.now(),
        next_attempt_at=None,
    )
    for record in step.records:
        if record.pk not in moved:
            # Stopped nothing: it ended first; not asked to stop: it runs on.
            step.result.add_skipped(
                "already finished" if record.pk in stops else "already running"
            )
    canceled = [r for r in step.records if r.pk in moved]
    reason = step.reason or "canceled by an operator"
    _timeline(
        [r for r in canceled if r.pk in taken],
        JobEvent.Kind.CANCELED,
        step.actor,
        reason,
    )
    _timeline(
        [r for r in canceled if r.pk not in taken],
        JobEvent.Kind.CANCELED,
        step.actor,
        f"{reason} while it ran (stopped by {who})",
    )
    step.result.done += len(canceled)


#: RQ statuses of a job waiting in Redis.
REDIS_WAITING = frozenset({"queued", "scheduled", "deferred"})


def _actor_name(actor: Any) -> str:
    user = acting_user(actor)
    return user.get_username() if user else "system"


def _delete(step: Step) -> None:
    doomed = [r.pk for r in step.records]
    transaction.on_commit(lambda: live.delete(doomed))
    JobRecord.objects.filter(pk__in=doomed).delete()
    step.result.done += len(doomed)


#: Every bulk action on jobs, by the name the front doors post.
JOB_ACTIONS = {
    action.name: action
    for action in (
        JobAction("retry", "Retried", transitions.RETRYABLE, _retry),
        JobAction("cancel", "Canceled", transitions.CANCELABLE, _cancel),
        JobAction("delete", "Deleted", transitions.DELETABLE, _delete, skip="{}"),
    )
}


#: Cancel only what waits (emptying a queue): a job a worker took meanwhile
#: runs on.
CANCEL_WAITING = JobAction(
    "cancel", "Canceled", transitions.WAITING, partial(_cancel, stop=False)
)


def _lock_applicable(
    ids: list[str], action: JobAction, result: BulkResult
) -> list[JobRecord]:
    """Lock a chunk's records; count those the action does not apply to."""
    records = list(JobRecord.objects.select_for_update().filter(pk__in=ids))
    for status, count in Counter(
        r.status for r in records if r.status not in action.applies_to
    ).items():
        label = JobRecord.Status(status).label.lower()
        result.add_skipped(action.skip.format(label), count)
    result.add_skipped("not found", len(ids) - len(records))
    return [r for r in records if r.status in action.applies_to]


def jobs_act(
    *,
    action: str | JobAction,
    ids: Iterable[str],
    actor: Any,
    origin: str = Origin.CODE,
    reason: str = "",
    target: str = "",
) -> BulkResult:
    """Run one of JOB_ACTIONS over jobs: one transaction, chunk by chunk, and
    one operator-log row. Jobs in a status the action does not apply to are
    skipped and counted; an empty selection does nothing and logs nothing."""
    job_action = action if isinstance(action, JobAction) else JOB_ACTIONS.get(action)
    if job_action is None:
        raise InvalidInput.one("action", f"unknown action {str(action)[:40]!r}")
    result = BulkResult()
    with transaction.atomic():
        touched = False
        for chunk in _chunks(ids):
            touched = True
            records = _lock_applicable(chunk, job_action, result)
            if records:
                job_action.run(Step(records, actor, reason, result))
        if touched:
            audit(
                actor=actor,
                action=job_action.name,
                target=target or "jobs",
                count=result.done,
                reason=reason,
                origin=origin,
                skipped=dict(result.skipped),
            )
    return result


def job_act(
    *,
    action: str,
    record: JobRecord,
    actor: Any,
    origin: str = Origin.CODE,
    reason: str = "",
) -> BulkResult:
    """One of JOB_ACTIONS on one job (its page, the API)."""
    return jobs_act(
        action=action,
        ids=[record.pk],
        actor=actor,
        origin=origin,
        reason=reason,
        target=f"job {record.pk}",
    )


#: Run dead or canceled jobs again, with a fresh set of attempts.
jobs_retry = partial(jobs_act, action="retry")
#: Cancel jobs: waiting ones leave their queue, running ones are stopped.
jobs_cancel = partial(jobs_act, action="cancel")
#: Delete jobs and their history; running jobs are skipped.
jobs_delete = partial(jobs_act, action="delete")
job_retry = partial(job_act, action="retry")
job_cancel = partial(job_act, action="cancel")


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
    old = JobRecord.objects.filter(status__in=transitions.FINAL, finished_at__lt=cutoff)
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
