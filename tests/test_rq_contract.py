"""The RQ, rq-scheduler, django-rq and redis-py internals this project relies on.

Each one is listed, with where it is used and why no public hook serves, in
docs/rq_internals.md; each test below pins one of them, so an upgrade that
changes one fails here, by name, instead of in a worker in production. A
failing test names what to re-read in the new release and what to port.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import textwrap
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import rq.command
import rq.registry
from django_rq.contrib.prometheus import RQCollector
from django_rq.queues import DjangoScheduler
from rq import get_current_job
from rq.executions import ExecutionRegistry
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat
from rq.worker import BaseWorker, SimpleWorker, Worker, WorkerStatus
from rq_scheduler import Scheduler

from jobs.backend import (
    connect,
    jobhash,
    live,
    queueing,
    recovery,
    refusals,
    rqwrites,
    scheduler,
    scheduling,
    workers,
)
from jobs.processes.schedules import ConsoleScheduler

#: Seconds before now: an execution whose heartbeat ran out this long ago.
LONG_AGO = 3600


def shape(function: Callable[..., Any]) -> str:
    """A signature without annotations (RQ writes them as strings, and they
    change without breaking a caller): names, kinds and defaults."""
    stars: dict[Any, str] = {
        inspect.Parameter.VAR_POSITIONAL: "*",
        inspect.Parameter.VAR_KEYWORD: "**",
    }
    parts: list[str] = []
    for p in inspect.signature(function).parameters.values():
        text = stars.get(p.kind, "") + p.name
        if p.kind == p.KEYWORD_ONLY and not any("*" in x for x in parts):
            parts.append("*")
        if p.default is not p.empty:
            text += f"={p.default!r}"
        parts.append(text)
    return ", ".join(parts)


def fingerprint(function: Callable[..., Any]) -> str:
    source = textwrap.dedent(inspect.getsource(function))
    return hashlib.sha1(source.encode()).hexdigest()[:12]


# -- 1. RQ methods this project overrides: their signatures ------------------

#: (RQ class, method, the signature our override is written against).
OVERRIDDEN = [
    (Worker, "__init__", None),  # checked by keyword below: it is long
    (
        Worker,
        "bootstrap",
        "self, logging_level='INFO', date_format='%H:%M:%S', "
        "log_format='%(asctime)s %(message)s'",
    ),
    (
        Worker,
        "_start_scheduler",
        "self, burst=False, logging_level='INFO', "
        "date_format='%H:%M:%S', log_format='%(asctime)s %(message)s'",
    ),
    (Worker, "dequeue_job_and_maintain_ttl", "self, timeout, max_idle_time=None"),
    (Worker, "heartbeat", "self, timeout=None, pipeline=None"),
    (Worker, "subscribe", "self"),
    (Worker, "unsubscribe", "self"),
    (Worker, "set_state", "self, state, pipeline=None"),
    (Worker, "run_maintenance_tasks", "self"),
    (Worker, "clean_registries", "self"),
    (Worker, "check_for_suspension", "self, burst"),
    (Worker, "execute_job", "self, job, queue"),
    (SimpleWorker, "execute_job", "self, job, queue"),
    (Worker, "handle_exception", "self, job, *exc_info"),
    (
        Worker,
        "handle_job_failure",
        "self, job, queue, started_job_registry=None, exc_string=''",
    ),
    (Worker, "cleanup_execution", "self, job, pipeline"),
    (Worker, "get_heartbeat_ttl", "self, job"),
    (Worker, "main_work_horse", "self, job, queue"),
    (Worker, "fork_work_horse", "self, job, queue"),
    (Worker, "wait_for_horse", "self"),
    (Worker, "perform_job", "self, job, queue"),
    (Worker, "maintain_heartbeats", "self, job"),
    (Worker, "handle_execution_ended", "self, job, queue, heartbeat_ttl"),
    (Worker, "handle_job_success", "self, job, queue, started_job_registry"),
    (
        Worker,
        "prepare_job_execution",
        "self, job, remove_from_intermediate_queue=False",
    ),
    (Job, "prepare_for_execution", "self, worker_name, pipeline"),
    (Job, "restore", "self, raw_data"),
    (Job, "save", "self, pipeline=None, include_meta=True, include_result=True"),
    (
        Job,
        "dependencies_are_met",
        "self, parent_job=None, pipeline=None, exclude_job_id=None, "
        "refresh_job_status=True",
    ),
    (Job, "get_meta", "self, refresh=True"),
    (Job, "latest_result", "self, timeout=0"),
    (RQScheduler, "enqueue_scheduled_jobs", "self"),
    (Scheduler, "run", "self, burst=False"),
    (Scheduler, "heartbeat", "self"),
    (Scheduler, "enqueue_jobs", "self"),
]


@pytest.mark.parametrize(
    ("cls", "name", "expected"),
    [o for o in OVERRIDDEN if o[2] is not None],
    ids=[f"{o[0].__name__}.{o[1]}" for o in OVERRIDDEN if o[2] is not None],
)
def test_overridden_method_keeps_its_signature(cls, name, expected):
    assert shape(getattr(cls, name)) == expected, (
        f"{cls.__name__}.{name} changed: port our override (docs/rq_internals.md)"
    )


def test_worker_init_takes_the_keywords_we_set():
    """RecordingMixin.__init__ and ConsoleWorker.__init__ pass these; django-rq
    passes queue_class, which we drop (our lanes are plain Queues)."""
    params = inspect.signature(Worker.__init__).parameters
    for keyword in (
        "connection",
        "serializer",
        "job_class",
        "queue_class",
        "name",
        "worker_ttl",
        "job_monitoring_interval",
    ):
        assert keyword in params, keyword


def test_our_overrides_still_override_something():
    """An RQ method renamed or removed would leave our override dead code."""
    for cls, name in [
        (workers.ConsoleWorker, n) for c, n, _ in OVERRIDDEN if c is Worker
    ] + [
        (queueing.ConsoleJob, "prepare_for_execution"),
        (queueing.ConsoleJob, "restore"),
        (queueing.ConsoleJob, "save"),
        (queueing.ConsoleJob, "dependencies_are_met"),
        (queueing.ConsoleJob, "get_meta"),
        (queueing.ConsoleJob, "latest_result"),
        (refusals.CarefulScheduler, "enqueue_scheduled_jobs"),
        (scheduler.SchedulerLoop, "run"),
        (scheduler.SchedulerLoop, "heartbeat"),
        (scheduler.SchedulerLoop, "enqueue_jobs"),
    ]:
        bases = cls.__mro__[1:]
        assert any(
            name in vars(base) for base in bases if base.__module__[:2] in ("rq", "dj")
        ), f"{cls.__name__}.{name} overrides nothing in RQ any more"


def test_django_rq_scheduler_is_rq_schedulers():
    assert issubclass(DjangoScheduler, Scheduler)
    assert issubclass(ConsoleScheduler, DjangoScheduler)


# -- 2. RQ methods we copied: RQ's own source, fingerprinted ----------------

#: A changed fingerprint means RQ changed code we copied or mirror: re-read
#: it, port the change to our copy, then record the new fingerprint here.
COPIED = {
    # jobs/backend/recording.py RecordingMixin.dequeue_job_and_maintain_ttl
    "BaseWorker.dequeue_job_and_maintain_ttl": (
        BaseWorker.dequeue_job_and_maintain_ttl,
        "6b24b229a6d4",
    ),
    # jobs/backend/upkeep.py UpkeepMixin.clean_registries
    "BaseWorker.clean_registries": (BaseWorker.clean_registries, "d2a7b5c91dbb"),
    "rq.registry.clean_registries": (rq.registry.clean_registries, "cbc68ec540fd"),
    # jobs/backend/recording.py RecordingMixin.subscribe
    "BaseWorker.subscribe": (BaseWorker.subscribe, "9cad6605f41e"),
    "BaseWorker.unsubscribe": (BaseWorker.unsubscribe, "691bf30fbd75"),
    # jobs/backend/upkeep.py UpkeepMixin._start_careful_scheduler
    "BaseWorker._start_scheduler": (BaseWorker._start_scheduler, "e01916fa0353"),
    # jobs/backend/refusals.py CarefulScheduler.enqueue_scheduled_jobs
    "RQScheduler.enqueue_scheduled_jobs": (
        RQScheduler.enqueue_scheduled_jobs,
        "e876a18bcfd4",
    ),
    # jobs/backend/workers.py ConsoleWorker._record_success, its dependents
    # counted in the transaction rather than read under a WATCH before it
    "BaseWorker.handle_job_success": (BaseWorker.handle_job_success, "77c7c3f25535"),
    # jobs/backend/recording.py RecordingMixin.prepare_job_execution, in
    # fewer commands (one HSET of the worker's hash, no job.heartbeat, the
    # worker's heartbeat only where beats_in_preparation)
    "BaseWorker.prepare_job_execution": (
        BaseWorker.prepare_job_execution,
        "63a867970c7a",
    ),
    # jobs/backend/queueing.py ConsoleJob.prepare_for_execution, the attempt
    # counted in its HSET
    "Job.prepare_for_execution": (Job.prepare_for_execution, "68c838f0f868"),
    # jobs/backend/queueing.py ConsoleJob.perform, less its PERSIST
    "Job.perform": (Job.perform, "80df6cfc0713"),
    # jobs/backend/queueing.py ConsoleJob._restore_refused sets what restore sets
    "Job.restore": (Job.restore, "d593835faafc"),
    # jobs/backend/recovery.py recover_abandoned/_recover mirror the abandoned branch
    "StartedJobRegistry.cleanup": (
        rq.registry.StartedJobRegistry.cleanup,
        "7464387cedcf",
    ),
}


@pytest.mark.parametrize("name", list(COPIED))
def test_copied_rq_code_is_unchanged(name):
    function, known = COPIED[name]
    assert fingerprint(function) == known, (
        f"RQ changed {name}: port our copy (docs/rq_internals.md), then update "
        "the fingerprint"
    )


# -- 3. Private attributes and methods: present on real instances ------------


@pytest.fixture
def rq_worker(redis_server) -> Worker:
    return Worker(["contract"], connection=connect.connection())


@pytest.mark.parametrize(
    "attribute",
    [
        "_horse_pid",  # set to 0 after a Redis loss around a job (execute_job)
        "_stopped_job_id",  # a stopped job is not retried (handle_job_failure)
        "_ordered_queues",  # the lanes in priority order (RecordingMixin)
        "current_job_working_time",  # the heartbeat TTL (get_heartbeat_ttl)
        "last_cleaned_at",  # set by our clean_registries
        "should_run_maintenance_tasks",  # our dequeue loop
        "queue_class",
        "death_penalty_class",
        "job_monitoring_interval",
        "hostname",
        "_pubsub_exception_handler",  # our subscribe
        "pubsub_channel_name",
        "handle_payload",
    ],
)
def test_worker_has_the_attribute(rq_worker, attribute):
    assert hasattr(rq_worker, attribute), f"Worker.{attribute} is gone"


def test_a_stop_command_marks_the_job_in_stopped_job_id():
    """handle_job_failure reads it to tell a stopped job (never retried)."""
    source = inspect.getsource(rq.command)
    assert "worker._stopped_job_id = job_id" in source


def test_ordered_queues_are_the_queues_given(rq_worker):
    assert [q.name for q in rq_worker._ordered_queues] == ["contract"]


def test_a_performed_job_keeps_its_return_value_in_result(redis_server):
    """cleanup_execution summarises job._result into the "succeeded" event."""
    job = Job.create(
        "builtins.len",
        args=(["a", "b"],),
        connection=connect.connection(),
        serializer=JSONSerializer,
    )
    job.perform()
    assert job._result == 2


@pytest.mark.parametrize(
    ("cls", "name", "expected"),
    [
        (
            Job,
            "_handle_failure",
            "self, exc_string, pipeline, worker_name='', "
            "execution_id=None, execution_started_at=None, execution_ended_at=None",
        ),
        (
            Job,
            "_handle_success",
            "self, result_ttl, pipeline, worker_name='', "
            "execution_id=None, execution_started_at=None, execution_ended_at=None",
        ),
        (Job, "_remove_from_registries", "self, pipeline=None, remove_from_queue=True"),
        (Job, "retry", "self, queue, pipeline"),
        (
            Queue,
            "_enqueue_job",
            "self, job, pipeline=None, at_front=False, unique=False",
        ),
        (
            Queue,
            "enqueue_dependents",
            "self, job, pipeline=None, exclude_job_id=None, refresh_job_status=True",
        ),
        (rq.worker_registration, "clean_worker_registry", "queue"),
        (Job, "fetch_many", "job_ids, connection, serializer=None"),
        (Job, "should_enqueue_at_front", "self"),
        (
            rq.registry.ScheduledJobRegistry,
            "get_jobs_to_schedule",
            "self, timestamp=None, chunk_size=1000",
        ),
        (
            rq.registry.BaseRegistry,
            "remove",
            "self, job, pipeline=None, delete_job=False",
        ),
        (
            Result,
            "create_failure",
            "job, ttl, exc_string, worker_name='', pipeline=None, execution_id=None, "
            "execution_started_at=None, execution_ended_at=None",
        ),
        (BaseWorker, "increment_failed_job_count", "self, pipeline=None"),
        (RQScheduler, "acquire_locks", "self, auto_start=False"),
        (RQScheduler, "prepare_registries", "self, queue_names=None"),
        (RQScheduler, "release_locks", "self"),
    ],
    ids=lambda v: (
        v.__name__
        if inspect.isclass(v) or inspect.ismodule(v)
        else (v if " " not in v else "sig")
    ),
)
def test_called_rq_internal_keeps_its_signature(cls, name, expected):
    assert shape(getattr(cls, name)) == expected, f"{name} changed"


def test_a_job_carries_its_retry_state(redis_server):
    """handle_job_failure sets retries_left and retry_intervals so that RQ's
    own failure handling schedules our backoff."""
    job = Job.create("builtins.len", args=([],), connection=connect.connection())
    assert job.retries_left is None and job.retry_intervals is None
    job.retries_left, job.retry_intervals = 1, [3]
    assert job.get_retry_interval() == 3


@pytest.mark.parametrize(
    "attribute", ["_func_name", "_instance", "_args", "_kwargs", "_status"]
)
def test_a_restored_job_has_the_attribute(redis_server, attribute):
    """ConsoleJob._restore_refused sets these in place of RQ's restore, for a
    job whose hash another client wrote."""
    job = queueing.rq_queue("contract").enqueue(queueing.RUNNER, kwargs={})
    fetched = Job.fetch(job.id, connection=connect.connection())
    assert attribute in vars(fetched), f"Job.{attribute} is gone"


def test_rq_scheduler_has_what_careful_scheduler_uses(redis_server):
    """refusals.CarefulScheduler, UpkeepMixin._start_careful_scheduler and
    _keep_scheduler_alive (`_process`, the scheduler's process once started)."""
    scheduler = RQScheduler(
        [queueing.rq_queue("contract")],
        connection=connect.connection(),
        logging_level="WARNING",
        serializer=JSONSerializer,
    )
    attributes = ("_status", "_scheduled_job_registries", "_acquired_locks", "_process")
    for attribute in attributes:
        assert hasattr(scheduler, attribute), attribute
    assert {"WORKING", "STARTED"} <= set(RQScheduler.Status.__members__)
    assert scheduler.acquire_locks() == {"contract"}
    assert scheduler.acquired_locks == {"contract"}
    scheduler.register_birth()
    scheduler.release_locks()
    scheduler.register_death()
    worker = Worker(["contract"], connection=connect.connection())
    assert hasattr(worker, "scheduler")
    assert queueing.rq_queue("contract").intermediate_queue_key == (
        "rq:queue:contract:intermediate"
    )


# -- 4. Redis key names and hash fields RQ writes ---------------------------


def snapshot() -> dict[str, Any]:
    """Run as a job: what RQ has written while the job runs."""
    job = get_current_job()
    assert job is not None
    client = connect.connection()
    worker_key = f"rq:worker:{job.worker_name}"
    return {
        "workers": sorted(k.decode() for k in client.smembers("rq:workers")),
        "worker_fields": sorted(f.decode() for f in client.hgetall(worker_key)),
        "current_job": (client.hget(worker_key, "current_job") or b"").decode(),
        "started": [e.decode() for e in client.zrange("rq:wip:contract", 0, -1)],
        "job_fields": sorted(f.decode() for f in client.hgetall(job.key)),
        "job_id": job.id,
    }


class Unsubscribed(SimpleWorker):
    """RQ's worker without its command channel, which is not pinned here
    (on redis-py 8 RQ's own channel holds a worker's exit for a minute:
    see RecordingMixin.subscribe)."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


@pytest.fixture
def ran_a_job(redis_server) -> tuple[SimpleWorker, Job, dict[str, Any]]:
    client = connect.connection()
    queue = Queue("contract", connection=client, serializer=JSONSerializer)
    job = queue.enqueue("tests.test_rq_contract.snapshot", meta={"task": "x"})
    worker = Unsubscribed([queue], connection=client, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    seen = job.return_value()
    assert isinstance(seen, dict)
    return worker, job, seen


def test_worker_keys_and_fields(ran_a_job):
    """live.live_workers reads these; recovery._recover deletes a lost worker's."""
    worker, job, seen = ran_a_job
    assert worker.key == f"rq:worker:{worker.name}"
    assert Worker.redis_workers_keys == "rq:workers"
    assert seen["workers"] == [worker.key]
    assert seen["current_job"] == job.id
    assert {
        "hostname",
        "pid",
        "queues",
        "state",
        "birth",
        "last_heartbeat",
        "current_job",
    } <= set(seen["worker_fields"])
    after = connect.connection().hgetall(worker.key)
    assert after[b"queues"] == b"contract"
    assert int(after[b"successful_job_count"]) == 1
    worker.increment_failed_job_count()
    assert b"failed_job_count" in connect.connection().hgetall(worker.key)
    # A worker asked to stop says so (live.ask_worker_to_stop asks only once:
    # RQ's second shutdown command is its cold shutdown).
    worker._shutdown_requested_date = now()  # as RQ's request_stop sets it
    worker.set_shutdown_requested_date()
    assert connect.connection().hget(worker.key, "shutdown_requested_date")


def test_started_registry_entry_is_job_id_colon_execution(ran_a_job):
    """recover_abandoned and adopt_abandoned take the job id before the colon."""
    _worker, job, seen = ran_a_job
    (entry,) = seen["started"]
    job_id, execution = entry.split(":")
    assert job_id == job.id and execution


def test_job_hash_fields(ran_a_job):
    """live.py and queueing.py read these fields with HGET/HMGET."""
    _worker, job, seen = ran_a_job
    assert Job.key_for(job.id) == f"rq:job:{job.id}" == job.key
    assert {"origin", "status", "enqueued_at", "meta", "data"} <= set(
        seen["job_fields"]
    )


def test_queue_and_registry_keys(redis_server):
    """live.py builds these names by hand (one pipeline, no Queue objects)."""
    client = connect.connection()
    queue = Queue("contract:high", connection=client, serializer=JSONSerializer)
    assert queue.key == "rq:queue:contract:high"
    assert queue.redis_queues_keys == "rq:queues"
    expected = {
        "scheduled_job_registry": "rq:scheduled:contract:high",
        "started_job_registry": "rq:wip:contract:high",
        "deferred_job_registry": "rq:deferred:contract:high",
        "failed_job_registry": "rq:failed:contract:high",
        "finished_job_registry": "rq:finished:contract:high",
        "canceled_job_registry": "rq:canceled:contract:high",
    }
    for attribute, key in expected.items():
        registry = getattr(queue, attribute)
        assert registry.key == key
        assert type(registry).key_template.format(queue.name) == key  # _forget
    queue.schedule_job(
        queue.create_job("builtins.len", args=([],)),
        datetime.now(UTC) + timedelta(hours=1),
    )
    queue.enqueue("builtins.len", [])
    assert {k.decode() for k in client.keys("rq:*")} >= {
        "rq:queue:contract:high",
        "rq:queues",
        "rq:scheduled:contract:high",
    }


def test_job_statuses_are_the_strings_we_compare(redis_server):
    """live.still_stranded compares the raw hash field with b"queued"."""
    assert {s.value for s in JobStatus} >= {
        "queued",
        "started",
        "finished",
        "failed",
        "deferred",
        "scheduled",
        "stopped",
        "canceled",
    }
    assert WorkerStatus.IDLE == "idle"


def test_rq_scheduler_keys(redis_server):
    """scheduling.put writes what Scheduler.enqueue_at writes, by hand."""
    client = connect.connection()
    assert (
        Scheduler.scheduled_jobs_key == scheduling.KEY == "rq:scheduler:scheduled_jobs"
    )
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    job = Scheduler(connection=client).enqueue_at(due, len, [])
    assert client.zscore(Scheduler.scheduled_jobs_key, job.id) == due.timestamp()
    assert client.exists(Job.key_for(job.id))


# -- 5. RQ's failure text for an abandoned job ------------------------------


def test_rq_fails_an_abandoned_job_with_the_text_we_look_for(rq_worker):
    """recovery.abandoned_by_rq recognises RQ's clean-up by this text."""
    client = connect.connection()
    queue = rq_worker.queues[0]
    job = queue.enqueue("builtins.len", [])
    rq_worker.register_birth()
    rq_worker.prepare_execution(job)  # what a worker does before the job runs
    registry = queue.started_job_registry
    for entry in client.zrange(registry.key, 0, -1):
        client.zadd(registry.key, {entry: datetime.now(UTC).timestamp() - LONG_AGO})
    registry.cleanup()
    latest = job.latest_result()
    assert latest is not None and recovery.RQ_ABANDONED in latest.exc_string
    assert job.get_status() == JobStatus.FAILED
    # live.examine_jobs reads it raw: stream rq:results:<id>, base64 of zlib.
    ((_id, fields),) = client.xrevrange(f"rq:results:{job.id}", count=1)
    text = zlib.decompress(base64.b64decode(fields[b"exc_string"])).decode()
    assert recovery.RQ_ABANDONED in text
    raw = client.hgetall(job.key)
    assert recovery.RQ_ABANDONED in live._failure_text(raw, [(_id, fields)])


# -- 6. RQ's data encoding, rebuilt in rqwrites -----------------------------


def test_rqwrites_encodes_data_as_rq_does(redis_server):
    kwargs = {"task": "demo.echo", "payload": {"text": "ü"}}
    queue = queueing.rq_queue("contract")
    job = queue.create_job(queueing.RUNNER, kwargs=kwargs)
    job.save()
    stored = connect.connection().hget(job.key, "data")
    assert stored == rqwrites.job_data(queueing.RUNNER, kwargs)
    assert zlib.decompress(stored) == job.data


def test_rq_pickles_and_compresses_a_plain_producers_data(redis_server):
    """jobhash tells a plain RQ producer's job by these bytes, never
    unpickling it: zlib's first byte, then a pickle's protocol opcode."""
    job = Queue("contract", connection=connect.connection()).enqueue(len, [])
    data = connect.connection().hget(job.key, "data")
    assert data.startswith(b"x") and jobhash.decompressed(data).startswith(b"\x80")
    assert jobhash.examine(connect.connection().hgetall(job.key)).function == (
        "builtins.len"
    )


def test_hash_fields_refusals_writes_by_hand(redis_server):
    """refusals.refuse writes status, ended_at, exc_info and worker_name as
    RQ would: the names RQ uses and its time format."""
    job = queueing.rq_queue("contract").create_job(queueing.RUNNER, kwargs={})
    job._exc_info, job.meta = "refused", {"a": 1}  # written only when set
    written = job.to_dict()
    assert {"status", "ended_at", "exc_info", "worker_name"} <= set(written)
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert utcformat(moment) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert {k.encode() for k in written} | {b"result"} >= jobhash.BINARY_FIELDS


# -- 7. redis-py and django-rq internals -------------------------------------


def test_a_pipeline_keeps_its_commands_in_command_stack(redis_server):
    """rqwrites.learn reads what RQ put in a pipeline that is never sent."""
    pipe = connect.connection().pipeline(transaction=False)
    pipe.hset("k", "f", "v")
    ((args, options),) = pipe.command_stack
    assert args == ("HSET", "k", "f", "v") and isinstance(options, dict)
    pipe.reset()


def test_django_rq_collector_has_the_summary_we_unregister():
    """jobs/backend/prometheus.py unregisters it (its name fails promtool's checks)."""
    assert RQCollector.summary._name == "rq_request_processing_seconds_total"


@pytest.mark.parametrize("command", ["rqworker", "rqworker-pool"])
def test_django_rq_worker_commands_take_the_options_we_check(command):
    """jobs/checks.py reads a worker's command line with django-rq's parser."""
    from django.core.management import load_command_class

    parser = load_command_class("django_rq", command).create_parser(
        "manage.py", command
    )
    argv = ["--worker-class", "a.W", "--job-class", "a.J", "default"]
    options, _ = parser.parse_known_args(argv)
    assert (options.worker_class, options.job_class, options.args) == (
        "a.W",
        "a.J",
        ["default"],
    )


def test_redis_py_calls_the_apps_client_wraps():
    """jobs/backend/client.py overrides these and re-classes the pipeline."""
    from redis.client import Pipeline
    from redis.sentinel import Sentinel

    def parameters(function: Callable[..., Any]) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert parameters(redis.Redis.execute_command) == ["self", "args", "options"]
    assert parameters(Pipeline.execute_command) == ["self", "args", "kwargs"]
    assert parameters(Pipeline.execute) == ["self", "raise_on_error"]
    assert "redis_class" in parameters(Sentinel.master_for)
    assert type(redis.Redis().pipeline()) is Pipeline


def test_the_lease_rests_on_the_rq_calls_it_wraps():
    """ConsoleWorker's fencing: RQ's horse monitor heartbeats through
    maintain_heartbeats and reaps with wait_for_horse; kill_horse stops the
    job process; a worker's registration set is redis_workers_keys; and a
    job's executions live under rq:executions:<id> (queueing.executing, and
    _recover removes the lost one)."""
    source = inspect.getsource(Worker.monitor_work_horse)
    assert "self.maintain_heartbeats(job)" in source
    assert "self.wait_for_horse()" in source
    assert callable(Worker.kill_horse)
    assert Worker.redis_workers_keys == "rq:workers"
    assert ExecutionRegistry.key_template == "rq:executions:{0}"
    perform = inspect.getsource(Worker.perform_job)
    assert "self.handle_execution_ended(" in perform
    assert "self.handle_job_success(" in perform


def test_the_ended_heartbeat_can_ride_on_the_success_pipeline():
    """ConsoleWorker.handle_execution_ended sends no heartbeat of its own on
    a success with no callback (and a result kept): RQ's heartbeat there is
    only the job hash's last_heartbeat, which _handle_success's save of the
    whole hash writes in the success pipeline that follows."""
    beat = inspect.getsource(Job.heartbeat)
    writes = [
        line.strip()
        for line in beat.splitlines()
        if line.strip().startswith(("connection.", "self.", "pipeline."))
    ]
    assert writes == [
        "self.last_heartbeat = timestamp",
        "connection.hset(self.key, 'last_heartbeat', utcformat(self.last_heartbeat))",
    ]
    assert "'last_heartbeat'" in inspect.getsource(Job.to_dict)
    assert "self.save(pipeline=pipeline" in inspect.getsource(Job._handle_success)
    success = inspect.getsource(Worker.handle_job_success)
    assert "job._handle_success(" in success
    assert "if result_ttl != 0:" in success


def test_a_job_read_in_the_dequeue_script_is_restored_as_fetch_does():
    """RecordingMixin._dequeue_now reads the popped job's hash in its Lua
    script (rq:job:<id>, HGETALL) and restores it, and a process-model job
    process restores that same hash: what Job.fetch does with its own read."""
    assert Job.redis_job_namespace_prefix == "rq:job:"
    fetch = inspect.getsource(Job.fetch)
    assert "job = cls(parse_job_id(id), connection=connection" in fetch
    assert "job.refresh()" in fetch
    refresh = inspect.getsource(Job.refresh)
    assert "data = self.connection.hgetall(self.key)" in refresh
    assert "self.restore(data)" in refresh


def test_a_job_process_ends_right_after_perform_job():
    """jobconn.vouch runs as ConsoleWorker.perform_job ends: nothing in RQ's
    job process may use Redis after it; and RQ's wait_for_horse returns the
    wait status the worker reuses a lent connection on (jobconn.Spares)."""
    source = inspect.getsource(Worker.main_work_horse)
    tail = source[source.index("self.perform_job(job, queue)") :]
    assert "os._exit(0)" in tail and "self." not in tail.replace(
        "self.perform_job(job, queue)", ""
    )
    assert "os.wait4(self.horse_pid, 0)" in inspect.getsource(Worker.wait_for_horse)


def test_redis_py_pool_internals_the_job_connection_uses(redis_server):
    """jobs/backend/jobconn.py: a connection made by the pool, connected with
    one attempt, put (after reset) into a pool's `_available_connections` with
    this process's `pid`, is the one the pool hands out; `disconnect` shuts a
    socket down only in the process whose pid the connection carries; `_sock`
    is the socket; `next_health_check` delays the health-check PING."""
    import os

    from redis.connection import AbstractConnection, ConnectionPool
    from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection

    assert shape(AbstractConnection.connect_check_health) == (
        "self, check_health=True, retry_socket_connect=True"
    )
    assert shape(SentinelManagedConnection.connect_to) == "self, address"
    owns = inspect.getsource(SentinelConnectionPool.owns_connection)
    assert "self.master_address == (connection.host, connection.port)" in owns
    assert "self.proxy.master_address" in inspect.getsource(
        SentinelConnectionPool.master_address.fget
    )
    disconnect = inspect.getsource(AbstractConnection.disconnect)
    assert "if os.getpid() == self.pid:" in disconnect and "SHUT_RDWR" in disconnect
    assert "connection.pid == self.pid" in inspect.getsource(
        ConnectionPool.owns_connection
    )
    health_check = inspect.getsource(AbstractConnection.check_health)
    assert "self.next_health_check" in health_check

    client = connect.worker_connection(connect.connection())
    pool = client.connection_pool
    conn = pool.make_connection()
    conn.connect_check_health(check_health=True, retry_socket_connect=False)
    assert conn._sock is not None and conn.health_check_interval == 10
    pool.reset()
    assert pool._available_connections == []
    conn.pid = os.getpid()
    pool._available_connections.append(conn)
    assert client.ping() is True
    assert pool.get_connection() is conn
