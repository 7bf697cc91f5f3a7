"""The recorder: batches are idempotent and survive a database outage."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from jobs import events, services
from jobs.backend import connect
from jobs.models import Attempt, JobEvent, JobRecord
from jobs.processes import recorder
from tests.conftest import work

pytestmark = pytest.mark.django_db(transaction=True)


def _stream_entries() -> list[events.Event]:
    rows = connect.connection().xrange(events.STREAM)
    return [events.parse(sid, data) for sid, data in rows]


def test_replaying_a_batch_changes_nothing():
    job = services.job_submit(task="demo.fail", payload={"times": 1})
    work()
    entries = _stream_entries()
    assert [e.kind for e in entries] == ["enqueued", "started", "failed"]
    recorder.apply(entries)
    snapshot = (
        JobEvent.objects.count(),
        Attempt.objects.count(),
        JobRecord.objects.get(pk=job.pk).status,
    )
    recorder.apply(entries)
    recorder.apply(entries[1:])
    assert (
        JobEvent.objects.count(),
        Attempt.objects.count(),
        JobRecord.objects.get(pk=job.pk).status,
    ) == snapshot
    assert snapshot[2] == JobRecord.Status.RETRYING


def test_events_stay_in_redis_until_the_database_takes_them(monkeypatch):
    services.job_submit(task="demo.echo", payload={"text": "x"})
    work()
    rec = recorder.Recorder(consumer="one")

    def database_down(entries: list[events.Event]) -> int:
        raise DatabaseError("database is down")

    monkeypatch.setattr(recorder, "apply", database_down)
    with pytest.raises(DatabaseError):
        rec.drain()
    monkeypatch.undo()
    assert rec.backlog() == 3
    assert rec.drain_all() == 3
    assert rec.backlog() == 0
    assert JobRecord.objects.get().status == JobRecord.Status.SUCCEEDED


def test_events_for_unknown_jobs_are_skipped():
    entry = events.Event("1-1", "started", "not-a-record", 1.0, {"attempt": 1})
    assert recorder.apply([entry]) == 0


def test_fingerprint_ignores_numbers_and_quoted_values():
    a = recorder.fingerprint("t", "KeyError", "user 1234 not found in 'alpha'")
    b = recorder.fingerprint("t", "KeyError", "user 98 not found in 'beta'")
    c = recorder.fingerprint("t", "ValueError", "user 98 not found in 'beta'")
    assert a == b != c


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_recorder_reads_the_stream_in_either_protocol(
    redis_server, settings, protocol
):
    """redis-py 8 speaks RESP3 by default, which shapes stream replies
    differently; redis-py 7 speaks RESP2 unless told."""
    settings.REDIS_URL = f"{redis_server.url}?protocol={protocol}"
    job = services.job_submit(task="demo.echo", payload={"text": "resp"})
    work()
    assert recorder.Recorder(consumer="resp").drain_all() == 3
    assert JobRecord.objects.get(pk=job.pk).status == JobRecord.Status.SUCCEEDED
