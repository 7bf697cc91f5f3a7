"""The worker classes: RQ workers that record every attempt and retry with backoff.

Recording rides on pipelines RQ already sends: the "started" event goes out
with the job's preparation (see ConsoleJob.prepare_for_execution) and the
outcome with the execution clean-up, so a job costs no extra round trip.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker, Worker

from console.startup import explain_redis_error
from jobs import events
from jobs.queueing import ConsoleJob, lanes, rq_queue, whole_second_after
from jobs.registry import RetryPolicy

#: Results larger than this are summarised in the history, not copied whole.
RESULT_SUMMARY_BYTES = 8192


@dataclass
class Failure:
    outcome: str  # "failed" or "lost"
    exc_type: str
    message: str
    traceback: str
    names: list[str] = field(default_factory=list)
    retry_at: float | None = None
    delay: float | None = None


def exception_names(exc_type: type[BaseException]) -> list[str]:
    names: list[str] = []
    for cls in exc_type.__mro__:
        names.extend((cls.__name__, f"{cls.__module__}.{cls.__qualname__}"))
    return names


def expand_lanes(queues: list[Queue | str]) -> list[str]:
    """Logical queue names to lane names: every high lane first, then normal,
    then low. A name that already is a lane is kept as it is."""
    names = [q.name if isinstance(q, Queue) else q for q in queues]
    tiers: list[list[str]] = [[], [], []]
    for name in names:
        if name.endswith((":high", ":low")):
            tiers[0 if name.endswith(":high") else 2].append(name)
            continue
        for tier, lane_name in zip(tiers, lanes(name), strict=True):
            tier.append(lane_name)
    ordered = [name for tier in tiers for name in tier]
    return list(dict.fromkeys(ordered))


def summarise(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= RESULT_SUMMARY_BYTES:
        return json.loads(text)
    return {"truncated": True, "preview": text[:RESULT_SUMMARY_BYTES]}


def check_redis(client: Any) -> None:
    """Fail at start-up with one line naming REDIS_URL, not a traceback."""
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise ImproperlyConfigured(explain_redis_error(exc)) from None


class RecordingMixin:
    """Attempt recording and backoff retries, for any RQ worker class."""

    connection: Any
    name: str
    hostname: str | None
    _stopped_job_id: str | None

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        given = queues if isinstance(queues, list | tuple) else [queues]
        client = kwargs.get("connection") or getattr(given[0], "connection", None)
        kwargs["serializer"] = JSONSerializer  # never pickle, whatever the CLI says
        kwargs["job_class"] = ConsoleJob
        kwargs.pop("queue_class", None)
        if not kwargs.get("name"):
            kwargs["name"] = (
                f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(2)}"
            )
        check_redis(client)
        lane_queues = [rq_queue(name, client) for name in expand_lanes(list(given))]
        super().__init__(lane_queues, *args, **kwargs)  # type: ignore[call-arg]
        self._failures: dict[str, Failure] = {}

    # -- failures -----------------------------------------------------------

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        exc_type: type[BaseException] = exc_info[0]
        exc_value: BaseException = exc_info[1]
        tb: TracebackType | None = exc_info[2]
        self._failures[job.id] = Failure(
            outcome="failed",
            exc_type=exc_type.__name__,
            message=str(exc_value)[:4000],
            traceback="".join(traceback.format_exception(exc_type, exc_value, tb)),
            names=exception_names(exc_type),
        )
        super().handle_exception(job, *exc_info)  # type: ignore[misc]

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
    ) -> None:
        failure = self._failures.get(job.id)
        if failure is None:
            # No exception reached us: the job's process died (killed, OOM,
            # segfault). The horse updated the attempt count, so re-read it.
            job.meta = job.get_meta(refresh=True)
            failure = Failure(
                outcome="lost",
                exc_type="WorkerLost",
                message="worker lost: " + (exc_string.strip() or "died"),
                traceback=exc_string,
            )
            self._failures[job.id] = failure
        attempt = int(job.meta.get("attempt", 1) or 1)
        this_round = attempt - int(job.meta.get("attempt_offset", 0) or 0)
        policy = RetryPolicy.from_dict(job.meta.get("policy") or {})
        stopped = self._stopped_job_id == job.id
        if not stopped and policy.allows_retry(this_round, failure.names):
            now = time.time()
            failure.delay = (
                0.0 if failure.outcome == "lost" else policy.delay(this_round)
            )
            due = whole_second_after(now + failure.delay) if failure.delay else now
            job.retries_left = 1
            job.retry_intervals = [due - now]  # type: ignore[list-item]
            failure.retry_at = due
        else:
            job.retries_left = 0
        try:
            super().handle_job_failure(  # type: ignore[misc]
                job,
                queue,
                started_job_registry=started_job_registry,
                exc_string=exc_string,
            )
        finally:
            self._failures.pop(job.id, None)

    # -- the outcome event --------------------------------------------------

    def cleanup_execution(self, job: Job, pipeline: Any) -> None:
        super().cleanup_execution(job, pipeline)  # type: ignore[misc]
        pipeline.xadd(events.STREAM, self.outcome_event(job))

    def outcome_event(self, job: Job) -> dict[str, str]:
        attempt = int(job.meta.get("attempt", 1) or 1)
        started = job.started_at.timestamp() if job.started_at else None
        ended = job.ended_at.timestamp() if job.ended_at else time.time()
        common: dict[str, Any] = {
            "attempt": attempt,
            "worker": self.name,
            "host": self.hostname,
            "started": started,
            "duration": (ended - started) if started else None,
        }
        failure = self._failures.get(job.id)
        if failure is None and job.get_status(refresh=False) == JobStatus.FINISHED:
            return events.fields(
                "succeeded", job.id, at=ended, **common, result=summarise(job._result)
            )
        if failure is None:  # stopped by an operator, or an unexpected path
            failure = Failure("failed", "JobStopped", "stopped", "")
        return events.fields(
            failure.outcome,
            job.id,
            at=ended,
            **common,
            exc_type=failure.exc_type,
            message=failure.message,
            traceback=failure.traceback[-20000:],
            retry_at=failure.retry_at,
            delay=failure.delay,
        )


class ConsoleWorker(RecordingMixin, Worker):
    """The default worker: one forked process per job (isolation)."""


class ConsoleSimpleWorker(RecordingMixin, SimpleWorker):
    """Runs jobs in the worker's own process: faster, no isolation."""
