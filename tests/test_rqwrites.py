"""The fast enqueue writes exactly what RQ itself would write."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job

from jobs.backend import connect, queueing, queues, rqwrites
from jobs.backend.queueing import EnqueueSpec, rq_queue
from jobs.services.validation import new_job_id

#: Set by the moment of the write, not by the job.
TIMES = {"created_at", "enqueued_at"}


def _spec(job_id: str, run_at: datetime | None = None) -> EnqueueSpec:
    return EnqueueSpec(
        id=job_id,
        task="demo.echo",
        payload={"text": 'ünïcode <b> & "quotes"'},
        queue="default",
        priority="high",
        timeout=42,
        policy={"max_attempts": 4, "base": 0.5, "no_retry": ["ValueError"]},
        run_at=run_at,
        attempt_offset=2,
    )


def _written_by_rq(spec: EnqueueSpec) -> None:
    queue = rq_queue(queues.lane(spec.queue, spec.priority))
    job = queueing._job(spec, queue)
    if spec.run_at is None:
        queue.enqueue_job(job)
    else:
        queue.schedule_job(job, spec.run_at)


def _hash(job_id: str) -> dict[bytes, bytes]:
    return connect.connection().hgetall(Job.key_for(job_id))


@pytest.mark.parametrize("scheduled", [False, True])
def test_fast_writes_equal_rq_writes(redis_server, scheduled):
    run_at = (
        datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) + 3600, UTC)
        if scheduled
        else None
    )
    ours, theirs = new_job_id(), new_job_id()
    queueing.enqueue([_spec(ours, run_at)])
    _written_by_rq(_spec(theirs, run_at))
    mine, rqs = _hash(ours), _hash(theirs)
    assert mine.keys() == rqs.keys()
    for name in mine.keys() - {t.encode() for t in TIMES}:
        assert mine[name] == rqs[name], name
    assert json.loads(zlib.decompress(mine[b"data"]))[3]["payload"] == {
        "text": 'ünïcode <b> & "quotes"'
    }
    client = connect.connection()
    if scheduled:
        registry = rq_queue("default:high").scheduled_job_registry.key
        assert client.zscore(registry, ours) == client.zscore(registry, theirs)
    else:
        assert client.lrange("rq:queue:default:high", 0, -1) == [
            ours.encode(),
            theirs.encode(),
        ]
    assert client.smembers("rq:queues") == {b"rq:queue:default:high"}


def test_a_job_is_written_once_however_many_times_it_is_enqueued(redis_server):
    spec = _spec(new_job_id())
    queueing.enqueue([spec, spec])
    queueing.enqueue([spec])
    assert connect.connection().llen("rq:queue:default:high") == 1


def test_a_server_that_lost_its_scripts_gets_them_again(redis_server):
    queueing.enqueue([_spec(new_job_id())])
    connect.connection().script_flush()
    queueing.enqueue([_spec(new_job_id())])
    assert connect.connection().llen("rq:queue:default:high") == 2


def test_only_the_template_id_may_be_learnt(redis_server):
    queue = rq_queue("default")
    job = queueing._job(_spec("not-the-template"), queue)
    with pytest.raises(ValueError, match="template id"):
        rqwrites.learn(queue, job, scheduled=False)


def test_an_id_written_where_it_is_not_expected_is_refused(redis_server):
    """A new RQ release writing the id somewhere else must not go unnoticed."""
    argv = (3, b"SET", f"elsewhere:{rqwrites.TEMPLATE_ID}", "1")
    with pytest.raises(rqwrites.UnexpectedWrite):
        rqwrites._check_every_id_is_marked(argv, set())


def test_job_ids_differ_in_their_first_characters():
    """The console shows ids truncated: a bulk's ids must differ up front."""
    ids = [new_job_id() for _ in range(1000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len({i[:8] for i in ids}) > 990


def test_the_delay_is_kept_to_the_second(redis_server):
    run_at = datetime.now(UTC) + timedelta(seconds=10.2)
    spec = _spec(new_job_id(), run_at)
    queueing.enqueue([spec])
    registry = rq_queue("default:high").scheduled_job_registry.key
    score = connect.connection().zscore(registry, spec.id)
    assert score == int(queueing.whole_second_after(run_at.timestamp()))


def test_only_an_hset_that_the_next_write_repeats_is_dropped():
    drop = [
        ("HSET", "k", "status", "queued"),
        ("HSET", "k", "a", "1", "status", "queued"),
    ]
    assert rqwrites._without_repeated_writes(drop) == (drop[1],)
    changed = [("HSET", "k", "status", "queued"), ("HSET", "k", "status", "started")]
    assert rqwrites._without_repeated_writes(changed) == tuple(changed)
    other_key = [("HSET", "k", "status", "queued"), ("HSET", "j", "status", "queued")]
    assert rqwrites._without_repeated_writes(other_key) == tuple(other_key)
