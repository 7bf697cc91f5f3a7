"""Jobs another RQ client wrote into our Redis: a plain `rq` producer's jobs
(pickled, or JSON) and hashes other tools rewrote (rq-dashboard's Requeue
pickles `meta`). Each fails alone, with its reason, and is never retried."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from jobs import services, stats
from jobs.backend import connect, queueing
from jobs.models import Attempt, JobRecord, Origin
from jobs.selectors.failures import failure_board
from jobs.selectors.overview import dead_counts
from jobs.services.reconcile import find_differences, reconcile
from tests.conftest import wait_for, work
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status


def plain_rq(serializer: Any = None) -> Queue:
    """The producer of a team that still enqueues with RQ itself."""
    return Queue("default", connection=connect.connection(), serializer=serializer)


def dead_totals() -> dict[str, int]:
    totals = stats.totals(connect.connection())
    return {f"{task}|{name}": n for (_q, task, name), n in totals.items()}


@pytest.mark.parametrize(
    ("serializer", "says"),
    [
        (None, "job data is pickled, not JSON"),
        (JSONSerializer, "job names 'some.module.func', not a registered task"),
    ],
)
def test_a_plain_rq_producers_job_is_refused_once_and_recorded_as_foreign(
    recorder, serializer, says
):
    foreign = plain_rq(serializer).enqueue("some.module.func", 1, x=2)
    good = services.job_submit(task="demo.echo", payload={"text": "after"})
    work()
    recorder.drain_all()
    record = JobRecord.objects.get(pk=foreign.id)
    assert record.origin == Origin.FOREIGN
    assert record.task == "some.module.func"
    assert record.status == Status.DEAD
    assert says in record.last_error and "some.module.func" in record.last_error
    assert record.error_type == "ForeignJob"
    assert record.attempts == 1  # refused once, never retried
    assert Attempt.objects.filter(job=record).count() == 1
    if serializer is JSONSerializer:  # JSON arguments are safe to keep
        assert record.payload == {"args": [1], "kwargs": {"x": 2}}
    else:
        assert record.payload == {}
    client = connect.connection()
    assert client.hget(f"rq:job:{foreign.id}", "status") == b"failed"
    assert client.zscore("rq:failed:default", foreign.id) is not None
    assert client.zcard("rq:scheduled:default") == 0
    assert JobRecord.objects.get(pk=good.pk).status == Status.SUCCEEDED
    assert dead_totals() == {
        "demo.echo|processed": 1,
        "some.module.func|failed": 1,
        "some.module.func|dead": 1,
    }


class Booby:
    """Unpickling this creates a file: proof that nobody unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_a_pickled_job_is_never_unpickled_by_the_worker(recorder, tmp_path):
    pickle.loads(pickle.dumps(Booby(tmp_path / "armed")))
    assert (tmp_path / "armed").exists()  # the trap works
    trap = tmp_path / "unpickled"
    foreign = plain_rq().enqueue("some.module.func", Booby(trap))
    connect.connection().hset(f"rq:job:{foreign.id}", "meta", pickle.dumps(Booby(trap)))
    work()
    recorder.drain_all()
    reconcile(repair=True)
    assert not trap.exists()
    assert JobRecord.objects.get(pk=foreign.id).task == "some.module.func"


def test_a_foreign_job_shows_on_every_screen_and_count(recorder, settings):
    foreign = plain_rq().enqueue("some.module.func", "x")
    work()
    recorder.drain_all()
    out = StringIO()
    call_command("jobs", "status", foreign.id, "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "dead"
    viewer = Client()
    viewer.force_login(user_in("Viewers"))
    page = viewer.get(f"/jobs/{foreign.id}/")
    assert page.status_code == 200
    assert "some.module.func" in page.content.decode()
    assert [g.task for g in failure_board().groups] == ["some.module.func"]
    assert dead_counts(["default"]) == {"default": 1}
    settings.METRICS_TOKEN = "t"
    metrics = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t").content
    text = metrics.decode()
    assert 'jobs_dead_total{queue="default",task="some.module.func"} 1.0' in text
    assert 'task=""' not in text


def test_a_foreign_job_is_not_retried_by_an_operator_either(recorder):
    """Retrying would turn it into a job of ours naming no registered task."""
    foreign = plain_rq().enqueue("some.module.func", 1)
    work()
    recorder.drain_all()
    record = JobRecord.objects.get(pk=foreign.id)
    result = services.job_retry(record=record, actor=None)
    assert result.done == 0
    assert result.skipped == {"written by another RQ client": 1}
    assert JobRecord.objects.get(pk=foreign.id).status == Status.DEAD


@pytest.mark.slow
def test_a_real_worker_refuses_foreign_jobs_and_carries_on(recorder, workers):
    pickled = plain_rq().enqueue("some.module.func", 1)
    as_json = plain_rq(JSONSerializer).enqueue("other.module.func", 2)
    good = services.job_submit(task="demo.echo", payload={"text": "after"})
    (worker,) = workers(1)
    client = connect.connection()
    wait_for(lambda: client.hget(f"rq:job:{good.pk}", "status") == b"finished")
    recorder.drain_all()
    assert worker.poll() is None  # the worker is still running
    expected = ((pickled, "some.module.func"), (as_json, "other.module.func"))
    for job, function in expected:
        record = JobRecord.objects.get(pk=job.id)
        assert (record.status, record.task, record.attempts) == (
            Status.DEAD,
            function,
            1,
        )
        assert record.last_error and record.worker_name
    assert JobRecord.objects.get(pk=good.pk).status == Status.SUCCEEDED


def test_reconcile_reports_and_records_foreign_jobs_no_worker_met(recorder):
    failed_there = plain_rq().enqueue("some.module.func", 1)
    ran = Queue("other", connection=connect.connection()).enqueue(len, "abc")
    # Another team's own RQ worker ran one of theirs on a lane of ours.
    done = plain_rq().enqueue("builtins.len", "abcd")
    SimpleWorker([plain_rq()], connection=connect.connection()).work(burst=True)
    assert failed_there.get_status() == "failed"  # their worker could not import it
    found = {d.job_id: d for d in reconcile(repair=False)}
    assert set(found) == {failed_there.id, done.id}  # "other" is none of our queues
    assert found[done.id].database == "no record"
    assert found[done.id].redis.startswith("finished")
    assert all(d.repair == "record" for d in found.values())
    assert not JobRecord.objects.exists()  # a dry run repairs nothing
    reconcile(repair=True)
    records = {r.pk: r for r in JobRecord.objects.all()}
    assert records[done.id].status == Status.SUCCEEDED
    assert records[done.id].task == "builtins.len"
    assert records[failed_there.id].status == Status.DEAD
    assert records[failed_there.id].last_error == (
        "ValueError: Invalid attribute name: some.module.func"  # their worker's
    )
    assert {r.origin for r in records.values()} == {Origin.FOREIGN}
    assert ran.id not in records
    assert reconcile(repair=False) == []


def test_reconcile_records_a_waiting_foreign_job_that_a_worker_then_refuses(
    recorder,
):
    waiting = plain_rq().enqueue("some.module.func", 1)
    reconcile(repair=True)
    assert JobRecord.objects.get(pk=waiting.id).status == Status.QUEUED
    work()
    recorder.drain_all()
    record = JobRecord.objects.get(pk=waiting.id)
    assert (record.status, record.origin) == (Status.DEAD, Origin.FOREIGN)
    assert reconcile(repair=False) == []


# -- hashes another tool rewrote (item 4) ------------------------------------


def _pickled_meta(key: str) -> None:
    # What rq-dashboard's Requeue leaves: RQ's default serializer on `meta`.
    connect.connection().hset(key, "meta", pickle.dumps({"attempt": 1}))


def _pickled_data(key: str) -> None:
    data = pickle.dumps(("jobs.runner.run", None, (), {"task": "demo.echo"}))
    connect.connection().hset(key, "data", data)


def _bad_utf8(key: str) -> None:
    connect.connection().hset(key, "description", b"\xff\xfe broken")


def _no_data(key: str) -> None:
    connect.connection().hdel(key, "data")


def _garbage_status(key: str) -> None:
    connect.connection().hset(key, "status", b"\x00nonsense")


CORRUPTIONS = {
    "pickled meta": (_pickled_meta, "job meta is not JSON"),
    "pickled data": (_pickled_data, "job data is pickled, not JSON"),
    "invalid utf-8": (_bad_utf8, "job field 'description' is not UTF-8"),
    "missing data": (_no_data, "job hash has no data field"),
    "garbage status": (_garbage_status, "is not an RQ status"),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_an_undecodable_job_fails_alone_and_the_worker_carries_on(recorder, how):
    corrupt, says = CORRUPTIONS[how]
    bad = services.job_submit(task="demo.echo", payload={"text": "bad"})
    good = services.job_submit(task="demo.echo", payload={"text": "good"})
    recorder.drain_all()
    corrupt(f"rq:job:{bad.pk}")
    work()  # one burst: a worker that quit would leave the good job queued
    recorder.drain_all()
    assert JobRecord.objects.get(pk=good.pk).status == Status.SUCCEEDED
    record = JobRecord.objects.get(pk=bad.pk)
    assert record.status == Status.DEAD
    assert says in record.last_error
    assert record.error_type == "UndecodableJob"
    assert record.origin != Origin.FOREIGN
    client = connect.connection()
    assert client.zscore("rq:failed:default", bad.pk) is not None
    assert client.hget(f"rq:job:{bad.pk}", "status") == b"failed"
    assert find_differences() == []  # nothing to repair, nothing wrong proposed


def test_an_undecodable_child_is_refused_when_its_parent_releases_it(recorder):
    """RQ moves a released child to its queue by writing the job back: an
    unreadable one is moved as it is, and refused with its own reason."""
    parent = services.job_submit(task="demo.echo", payload={"text": "p"})
    child = services.job_submit(
        task="demo.echo", payload={"text": "c"}, depends_on=[parent.pk]
    )
    recorder.drain_all()
    _pickled_meta(f"rq:job:{child.pk}")
    work()
    work()
    recorder.drain_all()
    assert JobRecord.objects.get(pk=parent.pk).status == Status.SUCCEEDED
    record = JobRecord.objects.get(pk=child.pk)
    assert record.status == Status.DEAD
    assert "job meta is not JSON" in record.last_error


@pytest.mark.parametrize("how", ["pickled meta", "garbage status"])
def test_rqs_scheduler_refuses_an_undecodable_due_job_and_moves_the_rest(recorder, how):
    corrupt, says = CORRUPTIONS[how]
    bad = services.job_submit(task="demo.echo", payload={"text": "b"}, delay=0.5)
    good = services.job_submit(task="demo.echo", payload={"text": "g"}, delay=0.5)
    recorder.drain_all()
    corrupt(f"rq:job:{bad.pk}")
    client = connect.connection()
    wait_for(
        lambda: len(client.zrangebyscore("rq:scheduled:default", 0, time.time())) == 2
    )
    work()  # its scheduler raised on the bad job, and the worker with it
    work()
    recorder.drain_all()
    assert JobRecord.objects.get(pk=good.pk).status == Status.SUCCEEDED
    record = JobRecord.objects.get(pk=bad.pk)
    assert record.status == Status.DEAD and says in record.last_error
    assert client.zcard("rq:scheduled:default") == 0


def test_reconcile_proposes_refusing_an_unreadable_job_before_a_worker_meets_it(
    recorder,
):
    bad = services.job_submit(task="demo.echo", payload={"text": "bad"})
    recorder.drain_all()
    _garbage_status(f"rq:job:{bad.pk}")
    (diff,) = reconcile(repair=False)
    assert (diff.job_id, diff.repair) == (bad.pk, "refuse")
    assert "is not an RQ status" in (diff.redis or "")
    reconcile(repair=True)
    recorder.drain_all()
    record = JobRecord.objects.get(pk=bad.pk)
    assert record.status == Status.DEAD and "not an RQ status" in record.last_error
    assert connect.connection().llen("rq:queue:default") == 0
    assert reconcile(repair=False) == []


@pytest.mark.slow
def test_a_real_worker_refuses_a_job_rq_dashboard_requeued_and_carries_on(
    recorder, workers
):
    bad = services.job_submit(task="demo.echo", payload={"text": "bad"})
    good = services.job_submit(task="demo.echo", payload={"text": "good"})
    recorder.drain_all()
    _pickled_meta(f"rq:job:{bad.pk}")
    (worker,) = workers(1)
    client = connect.connection()
    wait_for(lambda: client.hget(f"rq:job:{good.pk}", "status") == b"finished")
    recorder.drain_all()
    assert worker.poll() is None
    record = JobRecord.objects.get(pk=bad.pk)
    assert record.status == Status.DEAD
    assert record.last_error.startswith("job meta is not JSON")
    assert reconcile(repair=False) == []


@pytest.mark.slow
def test_a_real_worker_survives_a_pickled_meta_written_while_a_job_ran(
    recorder, workers
):
    """The crash of the issue: the job process died, and the worker re-read
    a meta that rq-dashboard had pickled meanwhile."""
    slow = services.job_submit(task="demo.sleep", payload={"seconds": 3})
    (worker,) = workers(1)
    client = connect.connection()
    wait_for(lambda: client.hget(f"rq:job:{slow.pk}", "status") == b"started")
    wait_for(lambda: recorder.drain_all() >= 0 and _horse_pid(slow.pk))
    _pickled_meta(f"rq:job:{slow.pk}")
    os.kill(_horse_pid(slow.pk), signal.SIGKILL)
    good = services.job_submit(task="demo.echo", payload={"text": "after"})
    wait_for(lambda: client.hget(f"rq:job:{good.pk}", "status") == b"finished")
    assert worker.poll() is None


def _horse_pid(job_id: str) -> int | None:
    return JobRecord.objects.get(pk=job_id).worker_pid


# -- the monitor and live reads ------------------------------------------------


def test_the_recorder_skips_an_entry_it_cannot_read(recorder):
    client = connect.connection()
    recorder.drain_all()  # creates the group
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    client.xadd("console:events", {"kind": "started", "job": job.pk, "at": b"\xff"})
    client.xadd(
        "console:events",
        {"kind": "failed", "job": job.pk, "data": json.dumps({"started": "soon"})},
    )
    work()
    recorder.drain_all()
    assert JobRecord.objects.get(pk=job.pk).status == Status.SUCCEEDED
    assert client.xlen("console:events") == 0


def test_the_monitors_sample_forgets_a_seen_worker_entry_it_cannot_read():
    from jobs.backend.live import WORKERS_SEEN
    from jobs.processes.monitor import sample_live_state

    client = connect.connection()
    client.hset(WORKERS_SEEN, mapping={"junk": b"\x80\x04", "list": "[1]"})
    sample_live_state()
    assert client.hlen(WORKERS_SEEN) == 0


def test_recovery_refuses_an_unreadable_job_of_a_dead_worker(recorder):
    """A job whose worker died, rewritten meanwhile by another client: the
    recovery sweep fails it alone and goes on with the others."""
    from jobs.backend.recovery import recover_abandoned

    bad = services.job_submit(task="demo.echo", payload={"text": "bad"})
    other = services.job_submit(task="demo.echo", payload={"text": "other"})
    client = connect.connection()
    client.delete("rq:queue:default")
    for job in (bad, other):  # as a worker that died mid-job leaves them
        client.zadd("rq:wip:default", {f"{job.pk}:exec": 1})
        client.hset(f"rq:job:{job.pk}", "status", "started")
    _pickled_meta(f"rq:job:{bad.pk}")
    recovered = recover_abandoned(["default"])
    assert [r.job_id for r in recovered] == [other.pk]
    recorder.drain_all()
    record = JobRecord.objects.get(pk=bad.pk)
    assert record.status == Status.DEAD and "job meta is not JSON" in record.last_error
    assert client.zcard("rq:wip:default") == 0
    assert client.lrange("rq:queue:default", 0, -1) == [other.pk.encode()]


def test_live_reads_survive_what_other_clients_write():
    from jobs.backend import live

    client = connect.connection()
    client.sadd("rq:workers", "rq:worker:other")
    client.hset("rq:worker:other", mapping={"pid": "x", "birth": b"\xff"})
    client.rpush("rq:queue:default", b"\xff\xfe")
    client.hset(b"rq:job:\xef\xbf\xbd\xef\xbf\xbd", "enqueued_at", b"\xff")
    client.zadd("rq:scheduled:default", {"far": 1e300})
    (other,) = live.live_workers()
    assert other.pid is None and other.birth is None
    assert live.queue_depths(["default"])["default"].queued == 1
    assert live.scheduled_jobs(["default"], limit=10) == []
    assert queueing.statuses(["nothing"]) == {"nothing": None}
