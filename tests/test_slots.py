"""Worker slots (`rqworker --concurrency N`, jobs/slots.py), real processes.

Each model (thread, fork) runs N jobs at once in one worker process; a job
that raises, crashes or outlives its timeout ends only its own attempt, and
the jobs running beside it succeed exactly once; a worker killed with -9
leaves all its running jobs to be recovered.
"""

from __future__ import annotations

import html
import os
import re
import signal
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from jobs import services
from jobs.backend import connect, queueing
from jobs.models import Attempt, JobRecord
from jobs.services.reconcile import find_differences
from tests.conftest import spawned_log_says, wait_for, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status
ONE_ATTEMPT = {"max_attempts": 1}


def slot_worker(spawn: Any, concurrency: int, model: str) -> Any:
    return spawn(
        "rqworker",
        "default",
        "--concurrency",
        str(concurrency),
        "--execution",
        model,
    )


def statuses(jobs: list[JobRecord]) -> list[str]:
    found = dict(
        JobRecord.objects.filter(pk__in=[j.pk for j in jobs]).values_list(
            "pk", "status"
        )
    )
    return [found[j.pk] for j in jobs]


def outcomes(job: JobRecord) -> list[str]:
    """The outcomes of a job's attempts, first to last."""
    found = Attempt.objects.filter(job=job).order_by("number")
    return list(found.values_list("outcome", flat=True))


def sleepers(count: int, seconds: float) -> list[JobRecord]:
    return [
        services.job_submit(task="demo.sleep", payload={"seconds": seconds})
        for _ in range(count)
    ]


def test_fifty_sleeping_jobs_run_at_once_in_one_thread_worker_and_a_crash_recovers_all(
    spawn, monitor
):
    """Issue 19: 50 sleeping jobs run at once in one thread-model worker
    process (all started, none finished); a kill -9 of that process recovers
    all 50, and each then succeeds exactly once after its lost attempt."""
    victim = slot_worker(spawn, 50, "thread")
    requests = [
        services.SubmitRequest(task="demo.sleep", payload={"seconds": 12})
        for _ in range(50)
    ]
    jobs = services.job_submit_many(requests=requests)
    wait_for(lambda: set(statuses(jobs)) == {Status.STARTED}, timeout=60)
    started = Attempt.objects.filter(job__in=jobs)
    assert {worker_pid(a.worker_name) for a in started} == {victim.pid}
    assert started.count() == 50 and not started.exclude(outcome="running").exists()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = slot_worker(spawn, 50, "thread")
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=150)
    for job in jobs:
        assert outcomes(job) == ["lost", "succeeded"]
    again = Attempt.objects.filter(job__in=jobs, number=2)
    assert {worker_pid(a.worker_name) for a in again} == {rescuer.pid}
    assert find_differences() == []


@pytest.mark.parametrize("model", ["thread", "process"])
def test_the_worker_hash_shows_slots_in_use_of_its_concurrency(spawn, monitor, model):
    """In the process model the worker writes no execution itself (its job
    process does, with the job's preparation) and says busy with its next
    write: the same fields, the same registry, a moment apart."""
    proc = slot_worker(spawn, 3, model)
    client = connect.connection()
    # Idle once started, as RQ's own worker says (readiness probes read it).
    wait_for(lambda: _field(client, proc.pid, b"state") == b"idle")
    jobs = sleepers(2, 3)

    def busy_fields() -> dict[bytes, bytes] | None:
        for key in client.smembers("rq:workers"):
            data = client.hgetall(key)
            if (
                data.get(b"pid") == str(proc.pid).encode()
                and data.get(b"slots_busy") == b"2"
            ):
                return data
        return None

    data = wait_for(busy_fields)
    assert data[b"concurrency"] == b"3"
    # Its job processes' memory (PSS), for the Workers screen: the process
    # model's long-lived ones; a thread-model worker has none.
    sizes = wait_for(lambda: _job_processes(client, proc.pid, model))
    if model == "process":
        assert 2 <= sizes[0] <= 3 and sizes[1] > 1024  # a Python process: MBs
    else:
        assert sizes == (0, 0)
    assert data[b"state"] == b"busy"
    assert data[b"current_job"].decode() in {str(j.pk) for j in jobs}
    # Each running job is in RQ's started registry, with an execution of
    # this worker, as `rq info` and RQ's clean-up read them.
    registry = queueing.rq_queue("default").started_job_registry
    wait_for(
        lambda: (
            {job_id for job_id, _ in registry.get_job_and_execution_ids()}
            == {str(j.pk) for j in jobs}
        )
    )
    worker_name = next(
        k.decode().removeprefix("rq:worker:")
        for k in client.smembers("rq:workers")
        if client.hget(k, "pid") == str(proc.pid).encode()
    )
    for job in jobs:
        executions = client.zrange(f"rq:executions:{job.pk}", 0, -1)
        (execution,) = executions
        key = f"rq:execution:{job.pk}:{execution.decode()}"
        assert client.hget(key, "worker_name").decode() == worker_name
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=60)
    wait_for(lambda: busy_fields() is None and _slots_busy(client, proc.pid) == b"0")


def _job_processes(client: Any, pid: int, model: str) -> tuple[int, int] | None:
    """The worker's hash's (job_processes, job_processes_kb) once written
    (in the process model: once it counts the two busy job processes)."""
    count = _field(client, pid, b"job_processes")
    kb = _field(client, pid, b"job_processes_kb")
    if count is None or kb is None:
        return None
    sizes = int(count), int(kb)
    return sizes if model != "process" or sizes[0] >= 2 else None


def _slots_busy(client: Any, pid: int) -> bytes | None:
    return _field(client, pid, b"slots_busy")


def _field(client: Any, pid: int, name: bytes) -> bytes | None:
    for key in client.smembers("rq:workers"):
        data = client.hgetall(key)
        if data.get(b"pid") == str(pid).encode():
            return data.get(name)
    return None


BAD_JOBS = {
    "raises": ("demo.fail", {"times": -1}, None, "DemoFailure"),
    "hangs-past-timeout": ("demo.sleep", {"seconds": 60}, 1, "JobTimeoutException"),
    "segfaults": ("demo.crash", {"how": "segfault"}, None, "WorkerLost"),
    "exits": ("demo.crash", {"how": "exit"}, None, "WorkerLost"),
}


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        ("thread", "raises"),
        ("thread", "hangs-past-timeout"),
        ("fork", "raises"),
        ("fork", "hangs-past-timeout"),
        ("fork", "segfaults"),
        ("fork", "exits"),
        ("process", "raises"),
        ("process", "hangs-past-timeout"),
        ("process", "segfaults"),
        ("process", "exits"),
    ],
)
def test_a_failing_job_in_a_slot_ends_only_its_own_attempt(
    spawn, monitor, tmp_path, model, bad
):
    task, payload, timeout, exc_type = BAD_JOBS[bad]
    proc = slot_worker(spawn, 4, model)
    others = sleepers(3, 6)
    wait_for(lambda: set(statuses(others)) == {Status.STARTED}, timeout=60)
    failing = services.job_submit(
        task=task, payload=payload, retry=ONE_ATTEMPT, timeout=timeout
    )
    wait_for(lambda: statuses([failing]) == [Status.DEAD], timeout=60)
    wait_for(lambda: set(statuses(others)) == {Status.SUCCEEDED}, timeout=60)
    attempt = Attempt.objects.get(job=failing)
    assert attempt.exc_type == exc_type
    for job in others:
        (only,) = Attempt.objects.filter(job=job)
        assert only.outcome == "succeeded"
        # It was running when the bad job started: they shared the worker.
        assert only.started_at < attempt.started_at < only.finished_at
        assert worker_pid(only.worker_name) == proc.pid
    assert worker_pid(attempt.worker_name) == proc.pid
    # The worker lives on (a thread that would not stop: started afresh
    # with the same pid) and takes new work.
    after = services.job_submit(task="demo.echo", payload={"text": "next"})
    wait_for(lambda: statuses([after]) == [Status.SUCCEEDED], timeout=60)
    assert proc.poll() is None
    assert worker_pid(Attempt.objects.get(job=after).worker_name) == proc.pid
    abandoned = model == "thread" and bad == "hangs-past-timeout"
    assert spawned_log_says(tmp_path, "rqworker-0", "starting afresh") == abandoned
    assert find_differences() == []


@pytest.mark.parametrize("model", ["thread", "fork", "process"])
def test_kill_9_of_a_slot_worker_recovers_all_its_running_jobs(spawn, monitor, model):
    victim = slot_worker(spawn, 4, model)
    jobs = sleepers(4, 30)
    wait_for(lambda: set(statuses(jobs)) == {Status.STARTED}, timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = slot_worker(spawn, 4, model)

    def all_running_again() -> bool:
        rows = JobRecord.objects.filter(pk__in=[j.pk for j in jobs])
        return all(
            r.status == Status.STARTED and worker_pid(r.worker_name) == rescuer.pid
            for r in rows
        )

    wait_for(all_running_again, timeout=90)
    for job in jobs:
        assert outcomes(job) == ["lost", "running"]
        lost = Attempt.objects.get(job=job, number=1)
        assert worker_pid(lost.worker_name) == victim.pid


@pytest.mark.parametrize("model", ["thread", "fork", "process"])
def test_warm_shutdown_finishes_every_running_job(spawn, monitor, model):
    proc = slot_worker(spawn, 4, model)
    jobs = sleepers(4, 3)
    wait_for(lambda: set(statuses(jobs)) == {Status.STARTED}, timeout=60)
    # Waiting behind them as the signal comes: no slot (nor a job process
    # that ends its job, in the process model) starts them.
    behind = sleepers(2, 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=30)
    for job in jobs:
        assert list(
            Attempt.objects.filter(job=job).values_list("outcome", flat=True)
        ) == ["succeeded"]
    assert statuses(behind) == [Status.QUEUED] * 2
    assert not Attempt.objects.filter(job__in=behind).exists()


def test_workers_screen_shows_slots_in_use_of_n(operator_client, settings):
    from jobs.backend.slots import SlotWorker
    from jobs.backend.workers import ConsoleWorker
    from jobs.selectors import workers as worker_selectors

    client = connect.connection()
    slotted = SlotWorker(["default"], connection=client, concurrency=8)
    plain = ConsoleWorker(["default"], connection=client)
    odd = ConsoleWorker(["default"], connection=client)
    for worker in (slotted, plain, odd):
        worker.register_birth()
        worker.heartbeat()
    client.hset(
        slotted.key,
        mapping={
            "concurrency": "8",
            "slots_busy": "3",
            "job_processes": "3",
            "job_processes_kb": str(30 * 1024),
        },
    )
    plain.set_state("busy")
    # Written by anyone: not believed, read as one slot.
    client.hset(
        odd.key,
        mapping={
            "concurrency": "lots",
            "slots_busy": "-5",
            "job_processes": "-2",
            "job_processes_kb": "9" * 30,
        },
    )
    # Its running jobs, as the monitor records them; one it ran before.
    running = sleepers(3, 1)
    JobRecord.objects.filter(pk__in=[j.pk for j in running]).update(
        status=Status.STARTED, worker_name=slotted.name
    )
    done = sleepers(1, 1)[0]
    JobRecord.objects.filter(pk=done.pk).update(
        status=Status.SUCCEEDED, worker_name=slotted.name
    )
    try:
        rows = {w.name: w for w in worker_selectors.worker_board().alive}
        page = operator_client.get("/workers/").content.decode()
        settings.METRICS_TOKEN = "t"
        metrics = operator_client.get("/metrics", HTTP_AUTHORIZATION="Bearer t")
    finally:
        for worker in (slotted, plain, odd):
            worker.register_death()
    assert rows[slotted.name].slots_text == "3 / 8"
    assert rows[plain.name].slots_text == "1 / 1"
    assert rows[odd.name].slots_text == "0 / 1"
    assert (rows[odd.name].job_processes, rows[odd.name].job_processes_kb) == (0, 0)
    assert ">+ 30.0 MB in 3 job processes</span>" in page
    assert page.count("job-memory") == 1
    memory = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.content.decode().splitlines()
        if line.startswith("jobs_worker_job_processes_memory_bytes{")
    }
    series = f'jobs_worker_job_processes_memory_bytes{{worker="{slotted.name}"}}'
    assert memory == {series: 30 * 1024 * 1024}
    assert '<td class="num slots">3 / 8</td>' in page
    assert '<td class="num slots">1 / 1</td>' in page
    # A worker with slots links to the jobs it runs (one job id would hide
    # the others); its name to every job it ran.
    running_link = re.search(r'"running-jobs" href="([^"]+)"[^>]*>3 running<', page)
    assert running_link is not None
    listed = operator_client.get(html.unescape(running_link.group(1)))
    assert {j.pk for j in listed.context["page"]} == {j.pk for j in running}
    every = operator_client.get(f"/jobs/?{urlencode({'worker': slotted.name})}")
    assert {j.pk for j in every.context["page"]} == {j.pk for j in [*running, done]}
    assert f'href="/jobs/?worker={quote(slotted.name)}"' in page


def test_async_tasks_run_at_once_on_the_workers_event_loop(spawn, monitor, tmp_path):
    from tests import slot_tasks

    assert callable(slot_tasks.async_nap)  # registered here too, to be submitted
    proc = spawn(
        "rqworker",
        "default",
        "--concurrency",
        "10",
        JOB_TASK_MODULES=slot_tasks.MODULES,
    )
    naps = [
        services.job_submit(task="tests.async_nap", payload={"seconds": 2})
        for _ in range(10)
    ]
    hung = services.job_submit(
        task="tests.async_nap", payload={"seconds": 300}, timeout=1, retry=ONE_ATTEMPT
    )
    wait_for(lambda: set(statuses(naps)) == {Status.SUCCEEDED}, timeout=60)
    wait_for(lambda: statuses([hung]) == [Status.DEAD], timeout=60)
    attempts = list(Attempt.objects.filter(job__in=naps))
    assert max(a.started_at for a in attempts) < min(a.finished_at for a in attempts)
    for job in naps:
        record = JobRecord.objects.get(pk=job.pk)
        assert record.result == {"slept": 2.0, "job": str(job.pk)}
    assert Attempt.objects.get(job=hung).exc_type == "JobTimeoutException"
    # The coroutine was cancelled: its thread stopped, nothing was abandoned.
    assert not spawned_log_says(tmp_path, "rqworker-0", "starting afresh")
    assert {worker_pid(a.worker_name) for a in attempts} == {proc.pid}


@pytest.mark.parametrize("model", [None, "process"])
def test_a_paused_queue_starts_no_job_in_any_slot(spawn, monitor, model):
    services.queue_pause(name="default", actor=None, reason="test")
    how = ["--execution", model] if model else []
    proc = spawn("rqworker", "default", "mail", "--concurrency", "4", *how)
    waiting = sleepers(3, 1)
    # Readiness: the worker takes every normal lane in order, default before
    # mail, so once it ran a mail job it has passed the paused jobs by; a
    # job process that ended a job passes them by too as it takes the next.
    probes = [
        services.job_submit(task="demo.echo", payload={"text": str(n)}, queue="mail")
        for n in range(3)
    ]
    wait_for(lambda: set(statuses(probes)) == {Status.SUCCEEDED}, timeout=60)
    assert set(statuses(waiting)) == {Status.QUEUED}
    services.queue_resume(name="default", actor=None)
    wait_for(lambda: set(statuses(waiting)) == {Status.SUCCEEDED}, timeout=60)
    assert proc.poll() is None


# -- the RQ internals jobs/slots.py relies on (docs/rq_internals.md) ----------

SLOT_OVERRIDES = [
    ("_shutdown", "self"),
    ("request_force_stop", "self, signum, frame"),
    ("teardown", "self"),
    ("dequeue_job_and_maintain_ttl", "self, timeout, max_idle_time=None"),
    ("execute_job", "self, job, queue"),
    ("cleanup_execution", "self, job, pipeline"),
    ("handle_payload", "self, message"),
    ("kill_horse", "self, sig=<Signals.SIGKILL: 9>"),
    ("check_for_suspension", "self, burst"),
]
SLOT_CALLS = [
    ("handle_job_success", "self, job, queue, started_job_registry"),
    ("handle_work_horse_killed", "self, job, retpid, ret_val, rusage"),
]
#: RQ code that jobs/backend/slots.py and slotends.py mirror for one slot
#: (fingerprints as in tests/test_rq_contract.py): monitor_work_horse
#: (SlotEndings._lost and _reap_fork), perform_job's tail (_succeed, _fail),
#: prepare_execution (SlotWorker._begin), _shutdown and request_force_stop
#: (theirs for N jobs), Execution.create (slotprocs.save_execution).
SLOT_COPIES = {
    "Worker.monitor_work_horse": "0010f4850a81",
    "BaseWorker.perform_job": "74f3ca1a261d",
    "prepare_execution": "37eaa6d7c3e3",
    "BaseWorker._shutdown": "962404082028",
    "BaseWorker.request_force_stop": "89c1cbd6c36e",
    "Execution.create": "116ce422f3f2",
}


@pytest.mark.parametrize(("name", "expected"), SLOT_OVERRIDES + SLOT_CALLS)
def test_rq_worker_methods_the_slot_worker_uses_keep_their_signature(name, expected):
    from rq.worker import Worker

    from jobs.backend.slotends import SlotEndings
    from jobs.backend.slots import SlotWorker
    from tests.test_rq_contract import shape

    assert shape(getattr(Worker, name)) == expected
    if (name, expected) in SLOT_OVERRIDES:  # still overrides something
        assert any(name in cls.__dict__ for cls in (SlotWorker, SlotEndings))


def test_rq_code_the_slot_worker_mirrors_is_unchanged():
    from rq.executions import Execution, prepare_execution
    from rq.job import Job
    from rq.worker import BaseWorker, Worker

    from tests.test_rq_contract import fingerprint, shape

    found = {
        "Worker.monitor_work_horse": fingerprint(Worker.monitor_work_horse),
        "BaseWorker.perform_job": fingerprint(BaseWorker.perform_job),
        "prepare_execution": fingerprint(prepare_execution),
        "BaseWorker._shutdown": fingerprint(BaseWorker._shutdown),
        "BaseWorker.request_force_stop": fingerprint(BaseWorker.request_force_stop),
        "Execution.create": fingerprint(Execution.create),
    }
    assert found == SLOT_COPIES, "port jobs/slots.py (docs/rq_internals.md)"
    assert shape(Execution.create) == "job, ttl, pipeline, worker_name=''"
    assert shape(Execution.heartbeat) == "self, started_job_registry, ttl, pipeline"
    assert shape(Job.heartbeat) == "self, timestamp, ttl, pipeline=None, xx=False"


def test_a_slot_worker_has_the_attributes_it_sets(redis_server):
    from jobs.backend.slots import SlotWorker

    worker = SlotWorker(["default"], connection=connect.connection())
    for name in ("execution", "_stop_requested", "_shutdown_requested_date"):
        assert hasattr(worker, name), name
    assert worker.is_horse is False


def test_bad_execution_models_are_refused():
    from django.core.management import CommandError, call_command

    from jobs.registry import task
    from tests.slot_tasks import Nap

    with pytest.raises(ValueError, match="must be one of fork, process, thread"):
        task("tests.bogus", schema=Nap, execution="gevent")
    with pytest.raises(CommandError, match="must be from 1 to 1000"):
        call_command("rqworker", "default", "--concurrency", "0")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("rqworker", "default", "--execution", "gevent")
    with pytest.raises(CommandError, match="leave out --worker-class"):
        call_command(
            "rqworker", "default", "--concurrency", "2", "--worker-class", "x.Y"
        )


def test_the_worker_checks_read_the_command_line_with_slots(monkeypatch):
    """`--concurrency 4` before the queues is not a queue named "4"."""
    from jobs import checks

    monkeypatch.setattr(
        "sys.argv", ["manage.py", "rqworker", "--concurrency", "4", "default"]
    )
    assert checks.worker_command_line(None) == []
    monkeypatch.setattr(
        "sys.argv", ["manage.py", "rqworker", "--concurrency", "4", "nowhere"]
    )
    (error,) = checks.worker_command_line(None)
    assert error.id == "jobs.E006" and "'nowhere'" in error.msg


def test_thread_jobs_each_get_their_own_database_connection(spawn, monitor):
    from tests import slot_tasks
    from tests.conftest import database_url_for_subprocesses

    assert callable(slot_tasks.db_connection)
    jobs = [
        services.job_submit(task="tests.db_connection", payload={"seconds": 2})
        for _ in range(6)
    ]
    spawn(
        "rqworker",
        "default",
        "--concurrency",
        "6",
        JOB_TASK_MODULES=slot_tasks.MODULES,
        DATABASE_URL=database_url_for_subprocesses(),
    )
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=60)
    results = [JobRecord.objects.get(pk=j.pk).result for j in jobs]
    assert {r["jobs"] for r in results} == {6}
    attempts = list(Attempt.objects.filter(job__in=jobs))
    assert max(a.started_at for a in attempts) < min(a.finished_at for a in attempts)
    # Six threads at once, six connections alive at once: never shared.
    assert len({r["thread"] for r in results}) == 6
    assert len({r["connection"] for r in results}) == 6


# -- the process model: long-lived job processes, replaced by the limits -------


def _pids(jobs: list[JobRecord]) -> list[int]:
    """The process that ran each job (the "started" event's pid)."""
    pids = [Attempt.objects.get(job=j).pid for j in jobs]
    assert None not in pids
    return [int(pid or 0) for pid in pids]


def test_a_process_slot_reuses_its_job_process(spawn, monitor):
    proc = slot_worker(spawn, 1, "process")
    jobs = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(5)
    ]
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=60)
    (pid,) = set(_pids(jobs))
    assert pid != proc.pid  # a job process, not the worker
    assert {
        worker_pid(a.worker_name) for a in Attempt.objects.filter(job__in=jobs)
    } == {proc.pid}


def test_a_job_process_takes_the_next_job_itself_and_rq_sees_it_run(spawn, monitor):
    """A job process that ends a job while others wait takes the next itself
    (slotprocs.take_next): RQ's started registry, the job's execution and the
    worker's hash show it running as for a job the worker hands over; a job
    that is not the job process's to run (a plain RQ producer's, refused)
    goes to the worker, and the one behind it still runs there."""
    from rq import Queue as RqQueue
    from rq import Worker as RqWorker

    client = connect.connection()
    proc = slot_worker(spawn, 1, "process")
    first = services.job_submit(task="demo.sleep", payload={"seconds": 1})
    wait_for(lambda: statuses([first]) == [Status.STARTED], timeout=60)
    second = services.job_submit(task="demo.sleep", payload={"seconds": 4})
    foreign = RqQueue("default", connection=client).enqueue("some.module.func", 1)
    third = services.job_submit(task="demo.echo", payload={"text": "third"})
    wait_for(lambda: statuses([second]) == [Status.STARTED], timeout=60)
    job = queueing.fetch(str(second.pk))
    (execution,) = job.get_executions()
    (worker,) = RqWorker.all(connection=client)  # as `rq info` reads them
    assert worker_pid(worker.name) == proc.pid
    assert execution.worker_name == worker.name
    registry = job.started_job_registry
    assert registry.get_job_and_execution_ids(cleanup=False) == [
        (str(second.pk), execution.id)
    ]
    assert worker.get_current_job_id() == str(second.pk)
    assert client.hget(worker.key, "slots_busy") == b"1"
    wait_for(lambda: statuses([second, third]) == [Status.SUCCEEDED] * 2, timeout=60)
    assert len(set(_pids([first, second, third]))) == 1
    refused = JobRecord.objects.get(pk=foreign.id)
    assert (refused.status, refused.attempts) == (Status.DEAD, 1)
    assert worker_pid(refused.worker_name) == proc.pid
    assert not job.get_executions()  # ended with its job


@pytest.mark.parametrize(
    ("env", "per_process"),
    [({"JOB_PROCESS_MAX_JOBS": "3"}, 3), ({"JOB_PROCESS_MAX_MEMORY_MB": "1"}, 1)],
    ids=["job-limit", "memory-limit"],
)
def test_a_process_slot_is_replaced_after_its_limit_and_loses_no_job(
    spawn, monitor, env, per_process
):
    spawn("rqworker", "default", "--concurrency", "1", "--execution", "process", **env)
    jobs = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(7)
    ]
    wait_for(lambda: set(statuses(jobs)) == {Status.SUCCEEDED}, timeout=60)
    pids = _pids(jobs)
    assert Attempt.objects.filter(job__in=jobs).count() == 7  # exactly once each
    # One job process after another, each for at most its limit of jobs.
    runs = [pids[0]]
    for pid in pids[1:]:
        assert pid == runs[-1] or pid not in runs  # never back to a replaced one
        runs.append(pid)
    counts = {pid: pids.count(pid) for pid in set(pids)}
    assert max(counts.values()) == per_process
    assert len(counts) == -(-7 // per_process)


@pytest.mark.parametrize("model", ["thread", "fork", "process"])
def test_rqs_stop_job_command_stops_only_that_job(spawn, monitor, model):
    from rq.command import send_stop_job_command

    proc = slot_worker(spawn, 3, model)
    jobs = sleepers(3, 6)
    wait_for(lambda: set(statuses(jobs)) == {Status.STARTED}, timeout=60)
    target, *others = jobs
    send_stop_job_command(connect.connection(), str(target.pk))
    wait_for(lambda: statuses([target]) == [Status.DEAD], timeout=60)
    wait_for(lambda: set(statuses(others)) == {Status.SUCCEEDED}, timeout=60)
    (stopped,) = Attempt.objects.filter(job=target)  # stopped: never retried
    assert "stopped" in stopped.exc_message
    for job in others:
        assert Attempt.objects.filter(job=job).count() == 1
    assert proc.poll() is None  # RQ's own handler would have killed the worker


def _stop_sent_while_the_worker_is_held(
    spawn: Any, target: str, seconds: float
) -> tuple[Any, JobRecord, JobRecord]:
    """One process-model slot runs a first job; a second, submitted behind it,
    is taken by the job process itself while the worker is held (SIGSTOP), and
    a stop-job for `target` ("first" or "second") is sent meanwhile; then the
    worker goes on. The worker and the two jobs (the second sleeps `seconds`)."""
    from rq.command import send_stop_job_command

    proc = slot_worker(spawn, 1, "process")
    first = services.job_submit(task="demo.sleep", payload={"seconds": 1})
    wait_for(lambda: statuses([first]) == [Status.STARTED], timeout=60)
    second = services.job_submit(task="demo.sleep", payload={"seconds": seconds})
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: statuses([first, second]) == [Status.SUCCEEDED, Status.STARTED],
            timeout=60,
        )
        stopped = first if target == "first" else second
        send_stop_job_command(connect.connection(), str(stopped.pk))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    return proc, first, second


def test_a_stop_for_a_job_that_ended_spares_the_next_its_job_process_took(
    spawn, monitor
):
    """The worker's slots lag behind a job process that takes its next job
    itself: a stop-job for the job it has ended must not kill the one it runs
    now (slotprocs.Running). The worker is held (SIGSTOP) while its job
    process ends a job and starts the next, and the stop comes meanwhile: on
    SIGCONT the worker handles the stop and the job process's message in
    either order."""
    proc, first, second = _stop_sent_while_the_worker_is_held(spawn, "first", 3)
    wait_for(lambda: statuses([second]) == [Status.SUCCEEDED], timeout=60)
    assert outcomes(first) == ["succeeded"]
    assert outcomes(second) == ["succeeded"]
    assert proc.poll() is None


def test_a_stop_for_a_job_its_job_process_took_stops_it_before_the_worker_reads_it(
    spawn, monitor
):
    """A job process says which job it took itself on a pipe the worker only
    reads as it tends its slots (slotprocs.Child.took): a stop-job for that
    job, arriving before the worker has read it, still stops it (the job
    processes' Running is asked, SlotEndings._stop_in_job_process) and it is recorded
    as stopped, not lost; the slot's next job runs in a new job process."""
    proc, first, second = _stop_sent_while_the_worker_is_held(spawn, "second", 30)
    wait_for(lambda: statuses([second]) == [Status.DEAD], timeout=60)
    (stopped,) = Attempt.objects.filter(job=second)  # stopped: never retried
    assert "stopped" in stopped.exc_message
    assert outcomes(first) == ["succeeded"]
    third = services.job_submit(task="demo.echo", payload={"text": "third"})
    wait_for(lambda: statuses([third]) == [Status.SUCCEEDED], timeout=60)
    assert _pids([third]) != _pids([first])  # the killed job process replaced
    assert proc.poll() is None


@pytest.mark.parametrize("model", ["thread", "process"])
def test_a_failed_job_in_a_slot_is_retried_with_backoff(spawn, monitor, model):
    spawn(
        "rqworker",
        "default",
        "--with-scheduler",
        "--concurrency",
        "2",
        "--execution",
        model,
    )
    job = services.job_submit(task="demo.fail", payload={"times": 1})
    wait_for(lambda: statuses([job]) == [Status.SUCCEEDED], timeout=60)
    outcomes = list(
        Attempt.objects.filter(job=job)
        .order_by("number")
        .values_list("outcome", "exc_type")
    )
    assert outcomes == [("failed", "DemoFailure"), ("succeeded", "")]
    assert JobRecord.objects.get(pk=job.pk).result == {"succeeded_on_attempt": 2}


@pytest.mark.parametrize("model", ["thread", "process"])
def test_rq_suspend_starts_no_new_job_and_lets_running_ones_finish(
    spawn, monitor, model
):
    from rq.suspension import resume, suspend

    client = connect.connection()
    proc = slot_worker(spawn, 3, model)
    running = sleepers(2, 4)
    wait_for(lambda: set(statuses(running)) == {Status.STARTED}, timeout=60)
    suspend(client)
    # Its state says when it has seen the suspension, as RQ's worker's does.
    wait_for(lambda: _field(client, proc.pid, b"state") == b"suspended")
    later = services.job_submit(task="demo.echo", payload={"text": "later"})
    # The running jobs are tended to the end (heartbeats, outcomes): each
    # succeeds once, never recovered as lost, on a worker with a free slot
    # all along that takes nothing new while suspended.
    wait_for(lambda: set(statuses(running)) == {Status.SUCCEEDED}, timeout=60)
    for job in running:
        assert list(
            Attempt.objects.filter(job=job).values_list("outcome", flat=True)
        ) == ["succeeded"]
    assert statuses([later]) == [Status.QUEUED]
    resume(client)
    wait_for(lambda: statuses([later]) == [Status.SUCCEEDED], timeout=60)
    assert worker_pid(Attempt.objects.get(job=later).worker_name) == proc.pid


@pytest.mark.parametrize("model", ["fork", "process", "thread"])
def test_a_dependent_added_while_its_parent_runs_is_enqueued_once_it_succeeds(
    spawn, monitor, model
):
    """The success transaction counts the parent's dependents (no WATCH before
    it); a child submitted while the parent runs waits in that set and is
    enqueued once, after the parent's end; one submitted after it runs at once."""
    proc = slot_worker(spawn, 2, model)
    (parent,) = sleepers(1, 2)
    wait_for(lambda: statuses([parent]) == [Status.STARTED], timeout=60)
    during = services.job_submit(
        task="demo.echo", payload={"text": "during"}, depends_on=[parent.pk]
    )
    assert during.status == Status.DEFERRED
    client = connect.connection()
    assert client.sismember(f"rq:job:{parent.pk}:dependents", during.pk)
    wait_for(lambda: statuses([parent]) == [Status.SUCCEEDED], timeout=60)
    after = services.job_submit(
        task="demo.echo", payload={"text": "after"}, depends_on=[parent.pk]
    )
    wait_for(lambda: set(statuses([during, after])) == {Status.SUCCEEDED}, timeout=60)
    for job in (parent, during, after):
        job.refresh_from_db()
        assert outcomes(job) == ["succeeded"]
    assert during.started_at >= parent.finished_at
    assert not client.exists(f"rq:job:{parent.pk}:dependents")
    assert proc.poll() is None
