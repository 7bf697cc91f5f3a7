"""The RQ adapter: the only module (with workers.py) that knows RQ.

Each logical queue has three priority lanes in Redis: `NAME:high`, `NAME` and
`NAME:low`. Workers serve every high lane before any normal lane before any low
lane, so within a queue high work always runs first.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import redis
from rq.exceptions import DeserializationError
from rq.executions import ExecutionRegistry
from rq.job import Dependency, Job, JobStatus, _job_stack
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat

from jobs import events
from jobs.backend import jobhash, rqwrites
from jobs.backend.connect import connection
from jobs.backend.jobhash import RUNNER
from jobs.backend.progressstore import _progress_key
from jobs.backend.queues import lane, logical_queue

RESULT_TTL = 3600
FAILURE_TTL = 30 * 24 * 3600
#: A pipeline flushes after this many jobs: bounds client memory and the
#: time Redis spends on one request.
PIPELINE_CHUNK = 1000


log = logging.getLogger("jobs.queueing")


class ConsoleJob(Job):
    """An RQ job that only ever runs the task runner, with JSON payloads.

    Reading one never raises on what another client wrote into its hash: the
    job is restored with `refusal` saying why it may not run (see jobhash).
    """

    #: Why this job may not run here ("" when it may), and what it names.
    refusal = ""
    verdict = jobhash.Verdict()
    #: The hash as a worker's dequeue read it (None: not read that way): a
    #: process-model job process restores it rather than read it again.
    dequeued_hash: dict[bytes, bytes] | None = None
    #: The preparation's pipeline sent the PERSIST that RQ's perform sends.
    _persisted = False
    #: More for the preparation's pipeline to carry (a process-model job
    #: process writes there the execution of a job it took itself).
    in_preparation: Callable[[Any], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        super().__init__(*args, **kwargs)

    def restore(self, raw_data: Any) -> Any:
        verdict = jobhash.examine(raw_data)
        if not verdict.reason:
            try:
                return super().restore(raw_data)
            except Exception as exc:  # noqa: BLE001 - any field RQ cannot parse
                verdict = replace(
                    verdict,
                    reason=jobhash.unreadable(exc),
                    exc_type=jobhash.UNDECODABLE,
                )
        self.verdict, self.refusal = verdict, verdict.reason
        self._restore_refused({jobhash.text(k): v for k, v in raw_data.items()})
        return None

    def _restore_refused(self, fields: dict[str, bytes]) -> None:
        """Only what is needed to fail the job: its data is never decoded
        (its function, arguments and meta are set here, not read)."""
        self.data = fields.get("data", b"")  # kept as it is, never decoded
        self._func_name = self.verdict.function or "<unreadable>"
        self._instance, self._args, self._kwargs = None, (), {}
        self.origin = jobhash.text(fields.get("origin"))
        self.description = jobhash.text(fields.get("description"))[:500]
        self.created_at = jobhash.moment(fields.get("created_at")) or self.created_at
        status = jobhash.text(fields.get("status"))
        self._status = (
            JobStatus(status) if status in jobhash.STATUSES else JobStatus.QUEUED
        )
        self.meta = {}

    def save(
        self,
        pipeline: Any = None,
        include_meta: bool = True,
        include_result: bool = True,
    ) -> None:
        """A job that cannot be read is never written back (RQ would write
        its own reading over the other client's bytes): it stays as it was
        found, for the refusal to quote, whoever moves it to a queue."""
        if self.refusal:
            return
        super().save(pipeline, include_meta, include_result)

    def perform(self) -> Any:
        """RQ's perform (a copy), less its PERSIST of the job's hash when the
        preparation's pipeline sent it: one round trip a job less."""
        if not self._persisted:
            return super().perform()
        _job_stack.push(self)
        try:
            self._result = self._execute()
        finally:
            assert self is _job_stack.pop()
        return self._result

    def dependencies_are_met(self, *args: Any, **kwargs: Any) -> bool:
        """An unreadable child is released with its parent (its own list of
        parents is not read): a worker then refuses it, with its reason."""
        if self.refusal:
            return True
        return bool(super().dependencies_are_met(*args, **kwargs))

    def get_meta(self, refresh: bool = True) -> dict[Any, Any]:
        """RQ's get_meta raises on a meta another client wrote; this keeps
        what was read before and says so."""
        if refresh:
            client: Any = self.connection
            found = jobhash.meta(client.hget(self.key, "meta"))
            if found is None:
                log.warning(
                    "job meta unreadable; keeping the meta read before",
                    extra={"job_id": self.id},
                )
            else:
                self.meta = found
        return self.meta

    def latest_result(self, timeout: int = 0) -> Any:
        """None when the result stream holds what JSON cannot read."""
        try:
            return super().latest_result(timeout=timeout)
        except Exception:  # noqa: BLE001 - a result another client wrote
            return None

    @property
    def func(self) -> Any:
        if self.refusal:
            raise DeserializationError(self.refusal)
        if self.func_name != RUNNER:
            raise DeserializationError(
                f"refusing to run {self.func_name!r}: only registered tasks run"
            )
        return super().func

    def prepare_for_execution(self, worker_name: str, pipeline: Any) -> None:
        """RQ's (a copy, fingerprinted in tests/test_rq_contract.py) with the
        attempt counted in the same HSET; then the attempt announced, in the
        pipeline RQ sends anyway; also the PERSIST that RQ's perform would
        send alone (see perform)."""
        attempt = int(self.meta.get("attempt", 0) or 0) + 1
        self.meta["attempt"] = attempt
        self.worker_name = worker_name
        self.last_heartbeat = now()
        self.started_at = self.last_heartbeat
        self._status = JobStatus.STARTED
        moment = utcformat(self.last_heartbeat)
        mapping = {
            "last_heartbeat": moment,
            "status": self._status,
            "started_at": moment,
            "worker_name": worker_name,
            "meta": self.serializer.dumps(self.meta),
        }
        pipeline.hset(self.key, mapping=mapping)
        if self.in_preparation is not None:
            self.in_preparation(pipeline)
        pipeline.persist(self.key)
        self._persisted = True
        # A new attempt starts with an empty progress bar and log.
        pipeline.delete(_progress_key(self.id), f"{_progress_key(self.id)}:log")
        started = self.started_at.timestamp() if self.started_at else time.time()
        logging.getLogger("jobs.worker").info(
            "job started",
            extra={
                "job_id": self.id,
                "task": self.meta.get("task"),
                "queue": logical_queue(self.origin),
                "attempt": attempt,
                "worker": worker_name,
                "pid": os.getpid(),
            },
        )
        pipeline.xadd(
            events.STREAM,
            events.fields(
                events.Kind.STARTED,
                self.id,
                at=started,
                attempt=attempt,
                worker=worker_name,
                host=socket.gethostname(),
                pid=os.getpid(),
            ),
        )


def fetch(job_id: str, client: Any = None) -> ConsoleJob:
    """A job as ConsoleJob reads it (raises NoSuchJobError when it is gone)."""
    job = ConsoleJob.fetch(job_id, connection=client or connection())
    assert isinstance(job, ConsoleJob)
    return job


@dataclass
class EnqueueSpec:
    id: str
    task: str
    payload: dict[str, Any]
    queue: str
    priority: str
    timeout: int
    policy: dict[str, Any]
    run_at: datetime | None = None
    depends_on: list[str] = field(default_factory=list)
    allow_failure: bool = False
    #: Attempts made before this run (an operator retry continues numbering).
    attempt_offset: int = 0
    #: Replace whatever Redis still holds under this id (a retried dead job).
    replace: bool = False


def _job(spec: EnqueueSpec, queue: Queue) -> Job:
    depends_on = (
        Dependency(jobs=spec.depends_on, allow_failure=spec.allow_failure)
        if spec.depends_on
        else None
    )
    return queue.create_job(
        RUNNER,
        kwargs={"task": spec.task, "payload": spec.payload},
        job_id=spec.id,
        timeout=spec.timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=spec.task,
        depends_on=depends_on,
        meta={
            "task": spec.task,
            "attempt": spec.attempt_offset,
            "attempt_offset": spec.attempt_offset,
            "policy": spec.policy,
        },
    )


def whole_second_after(moment: float) -> float:
    """RQ's scheduled registry stores whole seconds, truncating: a job due at
    12.6 s would run at 12 s. Rounding up keeps "not before" true."""
    return float(math.ceil(moment))


def _put(spec: EnqueueSpec, pipe: Any) -> None:
    """Through RQ itself: a job with dependencies (RQ watches its parents)."""
    queue = rq_queue(lane(spec.queue, spec.priority))
    job = _job(spec, queue)
    if spec.run_at is not None:
        due = datetime.fromtimestamp(whole_second_after(spec.run_at.timestamp()), UTC)
        queue.schedule_job(job, due, pipeline=pipe)
        pipe.xadd(
            events.STREAM,
            events.fields(
                events.Kind.SCHEDULED, spec.id, run_at=spec.run_at.isoformat()
            ),
        )
        return
    queue.enqueue_job(job, pipeline=pipe)
    kind = (
        events.Kind.DEFERRED
        if job.get_status(refresh=False) == JobStatus.DEFERRED
        else events.Kind.ENQUEUED
    )
    pipe.xadd(events.STREAM, events.fields(kind, spec.id))


def _claim_key(spec: EnqueueSpec) -> str:
    return f"console:enqueuing:{spec.id}:{spec.attempt_offset}"


_templates: OrderedDict[tuple[Any, ...], rqwrites.Template] = OrderedDict()
#: Kinds of job whose writes are remembered (a kind is a lane, task, policy...).
TEMPLATES_KEPT = 256


def _template(spec: EnqueueSpec, scheduled: bool) -> rqwrites.Template:
    kind = (
        lane(spec.queue, spec.priority),
        spec.task,
        spec.timeout,
        json.dumps(spec.policy, sort_keys=True),
        spec.attempt_offset,
        scheduled,
    )
    found = _templates.get(kind)
    if found is None:
        queue = rq_queue(str(kind[0]))
        model = replace(spec, id=rqwrites.TEMPLATE_ID, depends_on=[])
        found = rqwrites.learn(queue, _job(model, queue), scheduled=scheduled)
        _templates[kind] = found
        while len(_templates) > TEMPLATES_KEPT:
            _templates.popitem(last=False)
    return found


def _writes(spec: EnqueueSpec, now: str) -> tuple[str, list[Any]]:
    """The claim key and the guarded commands that enqueue one job."""
    data = rqwrites.job_data(RUNNER, {"task": spec.task, "payload": spec.payload})
    if spec.run_at is None:
        argv = _template(spec, False).fill(spec.id, data, now)
        event = events.fields(events.Kind.ENQUEUED, spec.id)
    else:
        due = int(whole_second_after(spec.run_at.timestamp()))
        argv = _template(spec, True).fill(spec.id, data, now, due)
        event = events.fields(
            events.Kind.SCHEDULED, spec.id, run_at=spec.run_at.isoformat()
        )
    argv += (3 + 2 * len(event), "XADD", events.STREAM, "*")
    argv += chain.from_iterable(event.items())
    return _claim_key(spec), argv


def enqueue(specs: list[EnqueueSpec]) -> None:
    """Put jobs into Redis with their "enqueued" events, a chunk of jobs per
    round trip; a job already claimed by another path is left to it.

    Jobs with dependencies go one by one through RQ, which watches their
    parents' keys so that a parent finishing meanwhile cannot strand them.
    """
    client = connection()
    replacing = [s for s in specs if s.replace]
    _forget([s.id for s in replacing])
    if replacing:
        # A job retried before it ever ran (canceled while queued) is on the
        # same attempt count as its last enqueue, whose claim may not have
        # lapsed. The outbox relay can only enqueue it once its old hash is
        # gone, under this same claim: one of the two still wins.
        client.delete(*[_claim_key(s) for s in replacing])
    plain = [s for s in specs if not s.depends_on]
    now = rqwrites.now_text()
    for start in range(0, len(plain), PIPELINE_CHUNK):
        chunk = plain[start : start + PIPELINE_CHUNK]
        rqwrites.run_guarded(client, [_writes(spec, now) for spec in chunk])
    for spec in [s for s in specs if s.depends_on]:
        if client.set(_claim_key(spec), "1", nx=True, ex=rqwrites.CLAIM_SECONDS):
            _put_dependent(client, spec)


#: A parent changing while its child is enqueued makes RQ start over.
DEPENDENT_TRIES = 10


def _put_dependent(client: Any, spec: EnqueueSpec) -> None:
    for _ in range(DEPENDENT_TRIES - 1):
        try:
            with client.pipeline() as pipe:
                _put(spec, pipe)
                pipe.execute()
            return
        except redis.exceptions.WatchError:
            continue
    with client.pipeline() as pipe:
        _put(spec, pipe)
        pipe.execute()


def _forget(job_ids: list[str]) -> None:
    """Drop jobs' old state (queues, registries, hash) but keep the lists of
    jobs that depend on them, so those still run once a retried parent succeeds.

    Two round trips per chunk (read each job's queue and status, then remove
    it where RQ's Job._remove_from_registries would), not a fetch and a status
    read per job: a bulk retry of 10,000 jobs took seconds in round trips. Only
    a queued job is looked for in its queue's list (a scan of the list each)."""
    from rq import registry as rq_registry

    registries: dict[str, type[rq_registry.BaseRegistry]] = {
        JobStatus.FINISHED: rq_registry.FinishedJobRegistry,
        JobStatus.DEFERRED: rq_registry.DeferredJobRegistry,
        JobStatus.SCHEDULED: rq_registry.ScheduledJobRegistry,
        JobStatus.FAILED: rq_registry.FailedJobRegistry,
        JobStatus.STOPPED: rq_registry.FailedJobRegistry,
        JobStatus.CANCELED: rq_registry.CanceledJobRegistry,
    }
    client = connection()
    for start in range(0, len(job_ids), PIPELINE_CHUNK):
        chunk = job_ids[start : start + PIPELINE_CHUNK]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hmget(Job.key_for(job_id), "origin", "status")
            found = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for job_id, (origin, status) in zip(chunk, found, strict=True):
                if origin is None:
                    continue  # missing (or no queue of its own): nothing left
                queue, state = jobhash.text(origin), jobhash.text(status)
                if state in (JobStatus.QUEUED, ""):
                    pipe.lrem(rq_queue(queue, client).key, 1, job_id)
                if state == JobStatus.STARTED:  # rare: executions need a read
                    job = ConsoleJob.fetch(job_id, connection=client)
                    job._remove_from_registries(pipeline=pipe, remove_from_queue=False)
                elif state in registries:
                    key = registries[state].key_template.format(queue)
                    pipe.zrem(key, job_id)
                pipe.delete(Job.key_for(job_id))
            pipe.execute()


#: What statuses() says of a status field that is not one of RQ's.
UNREADABLE = "unreadable"


def statuses(job_ids: Iterable[str]) -> dict[str, str | None]:
    """RQ's status of each job, None where Redis has no such job, UNREADABLE
    where its status field holds something else (written by another client)."""
    ids = list(job_ids)
    with connection().pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(Job.key_for(job_id), "status")
        values = pipe.execute()
    return {job_id: _status(v) for job_id, v in zip(ids, values, strict=True)}


def _status(raw: bytes | None) -> str | None:
    if not raw:
        return None
    found = jobhash.text(raw)
    return found if found in jobhash.STATUSES else UNREADABLE


def executing(job_ids: Iterable[str], now: float | None = None) -> set[str]:
    """The ids among `job_ids` that a worker heartbeats now (a live entry in
    RQ's execution registry of the job). After a failover that lost a running
    job's hash, its worker's next heartbeat writes this back, not the hash."""
    ids = list(job_ids)
    if not ids:
        return set()
    moment = time.time() if now is None else now
    with connection().pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.zcount(ExecutionRegistry.key_template.format(job_id), moment, "+inf")
        counts = pipe.execute()
    return {job_id for job_id, count in zip(ids, counts, strict=True) if count}


def existing(job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` that have a job hash in Redis."""
    ids = list(job_ids)
    if not ids:
        return set()
    with connection().pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.exists(Job.key_for(job_id))
        flags = pipe.execute()
    return {job_id for job_id, flag in zip(ids, flags, strict=True) if flag}


def rq_queue(name: str, client: Any = None) -> Queue:
    return Queue(
        name,
        connection=client or connection(),
        job_class=ConsoleJob,
        serializer=JSONSerializer,
    )
