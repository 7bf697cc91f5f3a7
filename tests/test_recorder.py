"""The recorder: batches are idempotent and survive a database outage."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from jobs import events, services
from jobs.backend import connect
from jobs.models import Attempt, JobEvent, JobRecord
from jobs.processes import recorder, recorder_handlers, recorder_sql
from tests.conftest import work

RECORD_COLUMNS = ["status", *recorder_sql.RECORD_FIELDS]

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
    a = recorder_handlers.fingerprint("t", "KeyError", "user 1234 not found in 'alpha'")
    b = recorder_handlers.fingerprint("t", "KeyError", "user 98 not found in 'beta'")
    c = recorder_handlers.fingerprint("t", "ValueError", "user 98 not found in 'beta'")
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


def _calls(command: str) -> int:
    """How often the server ran a command since it started."""
    stats = connect.connection().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_recorder_caught_up_reads_a_batch_in_one_call():
    """Its own unacknowledged entries are looked for only when some may be
    there (at start, after a failed batch, after a claim)."""
    rec = recorder.Recorder(consumer="one")
    assert rec.drain() == 0
    services.job_submit(task="demo.echo", payload={"text": "x"})
    work()
    before = _calls("xreadgroup")
    assert rec.drain() == 3
    assert _calls("xreadgroup") - before == 1
    assert JobRecord.objects.get().status == JobRecord.Status.SUCCEEDED


def test_entries_a_dead_recorder_left_are_applied_after_the_claim(monkeypatch):
    services.job_submit(task="demo.echo", payload={"text": "x"})
    work()
    dead = recorder.Recorder(consumer="dead")

    def database_down(entries: list[events.Event]) -> int:
        raise DatabaseError("database is down")

    monkeypatch.setattr(recorder, "apply", database_down)
    with pytest.raises(DatabaseError):
        dead.drain()
    monkeypatch.undo()
    alive = recorder.Recorder(consumer="alive")
    assert alive.drain() == 0  # the dead one's entries are not new
    monkeypatch.setattr(recorder, "CLAIM_IDLE_MS", 0)
    assert alive.claim_abandoned() == 3
    assert alive.drain() == 3
    assert alive.backlog() == 0
    assert JobRecord.objects.get().status == JobRecord.Status.SUCCEEDED


def test_a_batch_loads_records_as_the_orm_reads_them():
    job = services.job_submit(task="demo.fail", payload={"times": 1})
    work()
    recorder.Recorder(consumer="one").drain_all()
    loaded = recorder_sql.load_records(recorder_sql._db(), {job.pk, "no-such-job"})
    full = JobRecord.objects.get(pk=job.pk)
    assert list(loaded) == [job.pk]
    assert full.enqueued_at is not None and full.next_attempt_at is not None
    assert full.last_error and full.error_fingerprint
    for name in ["id", "task", *recorder_sql.RECORD_FIELDS]:
        assert getattr(loaded[job.pk], name) == getattr(full, name), name


def test_a_batch_loads_a_stored_result_as_the_orm_reads_it():
    job = services.job_submit(task="demo.echo", payload={"text": "kept"})
    work()
    recorder.Recorder(consumer="one").drain_all()
    loaded = recorder_sql.load_records(recorder_sql._db(), {job.pk})[job.pk]
    full = JobRecord.objects.get(pk=job.pk)
    assert full.result is not None and full.finished_at is not None
    assert (loaded.result, loaded.finished_at) == (full.result, full.finished_at)


def test_the_monitor_waits_longer_for_a_slower_stream_within_bounds():
    from jobs.processes.monitor import LINGER_MAX, LINGER_MIN, linger

    # An idle stream's first event, or a full or empty batch: no wait that
    # helps, or no wait at all.
    assert linger(0, 1.0) == 0.0
    assert linger(recorder_sql.BATCH, 0.5) == 0.0
    # A few events over a long while: the longest wait, never more.
    assert linger(1, 30.0) == LINGER_MAX
    # A slow stream waits longer than a fast one, and never under the floor.
    slow, fast = linger(3, 0.2), linger(300, 0.2)
    assert LINGER_MIN <= fast < slow <= LINGER_MAX
    assert linger(400, 0.001) == LINGER_MIN


def test_values_go_to_sql_as_their_fields_prepare_them():
    """The recorder's short cut for plain values gives what Django gives,
    and leaves every other value to Django."""
    from datetime import UTC, datetime, timedelta, timezone

    from django.db import connection, models

    from jobs.dbvalues import preparer

    aware = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    samples = [None, "text", "", "12", 7, 0, True, 2.5, aware]
    samples.append(aware.astimezone(timezone(timedelta(hours=2))))
    checked = 0
    for model in (JobRecord, Attempt, JobEvent):
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField):
                continue  # always Django's own path
            prepare = preparer(field, connection)
            for value in samples:
                try:
                    expected = field.get_db_prep_save(value, connection)
                except Exception as exc:  # noqa: BLE001 - the same must raise
                    with pytest.raises(type(exc)):
                        prepare(value)
                    continue
                found = prepare(value)
                assert (found, type(found)) == (expected, type(expected)), (
                    field,
                    value,
                )
                checked += 1
    assert checked > 100


def test_an_attempt_row_has_every_field_of_an_attempt_with_its_default():
    row = recorder_handlers.AttemptRow(job_id="j", number=2)
    model = Attempt(job_id="j", number=2)
    fields = [f.attname for f in Attempt._meta.concrete_fields if not f.primary_key]
    assert {name: getattr(row, name) for name in fields} == {
        name: getattr(model, name) for name in fields
    }


@pytest.mark.parametrize("task", ["demo.echo", "demo.fail"])
def test_an_attempt_in_one_batch_is_written_as_event_by_event(task):
    """A start and an end in one batch are one row: the same row that
    applying them one batch each writes."""
    fields = [f.attname for f in Attempt._meta.concrete_fields if not f.primary_key]
    job = services.job_submit(task=task, payload={"times": 1, "text": "x"})
    work()
    entries = _stream_entries()
    assert [e.kind for e in entries][:2] == ["enqueued", "started"]
    before = JobRecord.objects.filter(pk=job.pk).values(*RECORD_COLUMNS).get()
    recorder.apply(entries)
    together = list(Attempt.objects.filter(job=job).values(*fields))
    Attempt.objects.all().delete()
    JobEvent.objects.all().delete()
    JobRecord.objects.filter(pk=job.pk).update(**before)
    for entry in entries:
        recorder.apply([entry])
    assert list(Attempt.objects.filter(job=job).values(*fields)) == together
    assert together[0]["pid"] and together[0]["finished_at"]
