"""Schedules: validation, next runs, exactly-once firings, a real scheduler."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.backend import connect, scheduling
from jobs.models import JobRecord, Origin, Schedule
from jobs.processes.schedules import HEARTBEAT_KEY, fire_due, reconcile
from jobs.services import schedules as schedule_services
from tests.conftest import (
    database_url_for_subprocesses,
    spawned_log_says,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def make(**fields) -> Schedule:
    base = {
        "name": "tick",
        "task": "demo.echo",
        "payload": {"text": "tick"},
        "interval_seconds": 60,
    }
    return schedule_services.schedule_create(actor=None, **{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "not a cron", "interval_seconds": None}, "cron"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "cron"),
        ({"interval_seconds": None}, "cron"),
        (
            {
                "cron": "*/5 * * * *",
                "interval_seconds": None,
                "timezone": "Mars/Olympus",
            },
            "timezone",
        ),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": -5}, "interval_seconds"),
        ({"payload": {"txt": 1}}, "payload.text"),
        ({"payload": "{broken"}, "payload"),
        ({"task": "nope"}, "task"),
        ({"queue": "nope"}, "queue"),
    ],
)
def test_bad_schedule_is_refused_and_nothing_saved(fields, field):
    with pytest.raises(services.InvalidInput) as caught:
        make(**fields)
    assert field in caught.value.errors
    assert Schedule.objects.count() == 0
    assert scheduling.entries() == {}


def test_next_run_for_cron_in_a_time_zone_and_for_intervals():
    cron = make(
        name="nine", cron="0 9 * * *", interval_seconds=None, timezone="Europe/Paris"
    )
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert cron.next_after(after) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)
    every = make(
        name="every",
        interval_seconds=90,
        start_at=datetime(2026, 1, 1, tzinfo=UTC),
        end_at=datetime(2026, 1, 1, 0, 10, tzinfo=UTC),
    )
    assert every.next_after(datetime(2026, 1, 1, 0, 2, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 3, tzinfo=UTC
    )
    assert every.next_after(datetime(2026, 1, 1, 0, 9, 59, tzinfo=UTC)) is None


def test_creating_disabling_and_deleting_update_redis_at_once():
    schedule = make()
    assert scheduling.entries() == {schedule.pk: schedule.next_run_at}
    schedule_services.schedule_set_enabled(schedule=schedule, enabled=False, actor=None)
    assert scheduling.entries() == {}
    schedule_services.schedule_set_enabled(schedule=schedule, enabled=True, actor=None)
    assert list(scheduling.entries()) == [schedule.pk]
    schedule_services.schedule_delete(schedule=schedule, actor=None)
    assert scheduling.entries() == {}


def test_start_up_reconciles_redis_with_the_database():
    kept = make(name="kept")
    gone = make(name="gone")
    Schedule.objects.filter(pk=gone.pk).update(enabled=False)  # edited while down
    scheduling.put(9999, timezone.now())  # a schedule deleted while down
    reconcile()
    assert set(scheduling.entries()) == {kept.pk}


def test_one_firing_per_fire_time_however_often_it_is_fired():
    schedule = make(interval_seconds=1)
    due = datetime.now(UTC).replace(microsecond=0)
    for _ in range(3):
        fire_due(scheduling.entry_id(schedule.pk), due)
    jobs = JobRecord.objects.filter(schedule=schedule)
    assert jobs.count() == 1
    assert jobs.get().origin == Origin.SCHEDULE


@pytest.mark.parametrize(("catch_up", "expected"), [(False, 0), (True, 1)])
def test_missed_firing_is_run_once_or_skipped(catch_up, expected):
    schedule = make(interval_seconds=60, catch_up=catch_up)
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    fire_due(scheduling.entry_id(schedule.pk), long_ago)
    assert JobRecord.objects.filter(schedule=schedule).count() == expected
    schedule.refresh_from_db()
    assert schedule.next_run_at > timezone.now()  # not 180 catch-up firings


def test_run_now_submits_one_job_without_moving_the_next_run():
    schedule = make()
    before = schedule.next_run_at
    job = schedule_services.schedule_run_now(schedule=schedule, actor=None)
    schedule.refresh_from_db()
    assert JobRecord.objects.filter(schedule=schedule).get().pk == job.pk
    assert schedule.next_run_at == before
    assert scheduling.entries()[schedule.pk] == before


def fire_times(schedule: Schedule) -> list[int]:
    """The due times fired, from the idempotency keys (schedule:PK:EPOCH)."""
    keys = JobRecord.objects.filter(schedule=schedule).values_list(
        "idempotency_key", flat=True
    )
    return sorted(int(str(key).rsplit(":", 1)[1]) for key in keys)


def scheduler_cycles_after(moment: float, cycles: int) -> None:
    """Wait until the scheduler has heartbeated `cycles` + 1 times since
    `moment`: rq-scheduler heartbeats before and after each firing pass, so
    that many heartbeats include a whole pass begun after `moment`."""
    seen: set[bytes] = set()

    def enough() -> bool:
        beat = connect.connection().get(HEARTBEAT_KEY)
        if beat is not None and float(beat) >= moment:
            seen.add(beat)
        return len(seen) > cycles

    wait_for(enough, timeout=30, interval=0.02)


@pytest.mark.slow
def test_real_scheduler_fires_on_time_and_stops_when_disabled(spawn):
    schedule = make(interval_seconds=2)
    spawn(
        "rqscheduler", "--interval", "1", DATABASE_URL=database_url_for_subprocesses()
    )
    wait_for(lambda: len(fire_times(schedule)) >= 3, timeout=30)
    times = fire_times(schedule)
    # On the schedule's grid, each due time once. Not "every 2 s": on a loaded
    # machine a firing later than MISSED_AFTER is skipped by design (and logged).
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap > 0 and gap % 2 == 0 for gap in gaps), times
    schedule_services.schedule_set_enabled(schedule=schedule, enabled=False, actor=None)
    scheduler_cycles_after(time.time(), cycles=2)  # a pass in flight has ended
    last = max(fire_times(schedule))
    # Readiness: a whole firing pass begun after the next due time, so a
    # scheduler that still fired the schedule would have by now.
    scheduler_cycles_after(max(time.time(), last + 2), cycles=2)
    assert max(fire_times(schedule)) == last


@pytest.mark.slow
def test_a_scheduler_started_while_redis_is_down_fires_once_it_is_back(
    spawn, redis_server, tmp_path
):
    schedule = make(interval_seconds=1)
    redis_server.stop()
    try:
        url = database_url_for_subprocesses()
        spawn("rqscheduler", "--interval", "1", DATABASE_URL=url)
        wait_for(
            lambda: spawned_log_says(tmp_path, "rqscheduler-0", "waiting for redis")
        )
    finally:
        redis_server.start()
    fired = JobRecord.objects.filter(schedule=schedule)
    wait_for(fired.exists, timeout=60)


@pytest.mark.slow
def test_two_schedulers_never_fire_the_same_time_twice(spawn):
    schedule = make(interval_seconds=1)
    url = database_url_for_subprocesses()
    spawn("rqscheduler", "--interval", "1", DATABASE_URL=url)
    spawn("rqscheduler", "--interval", "1", DATABASE_URL=url)
    wait_for(lambda: len(fire_times(schedule)) >= 5, timeout=60)
    keys = Counter(
        JobRecord.objects.filter(schedule=schedule).values_list(
            "idempotency_key", flat=True
        )
    )
    assert max(keys.values()) == 1


def test_schedule_command_line():
    from io import StringIO

    from django.core.management import CommandError, call_command

    def run(*args: str) -> str:
        out = StringIO()
        call_command("jobs", "schedule", *args, stdout=out)
        return out.getvalue().strip()

    assert "Created schedule nightly" in run(
        "add",
        "nightly",
        "demo.echo",
        "--payload",
        '{"text": "n"}',
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Paris",
    )
    import json as json_lib

    listed = json_lib.loads(run("list", "--json"))
    assert listed[0]["cron"] == "0 3 * * *" and listed[0]["enabled"]
    assert run("disable", "nightly") == "Disabled schedule nightly."
    assert scheduling.entries() == {}
    assert run("enable", "nightly") == "Enabled schedule nightly."
    job_id = run("run-now", "nightly")
    assert JobRecord.objects.get(pk=job_id).schedule.name == "nightly"
    with pytest.raises(CommandError):
        run("add", "bad", "demo.echo", "--payload", '{"text": "n"}', "--every", "0")
    with pytest.raises(CommandError):
        run("enable", "missing")
    assert run("delete", "nightly") == "Deleted schedule nightly."
    assert Schedule.objects.count() == 0


def test_scheduled_screen_lists_schedules_with_actions():
    from django.test import Client

    from jobs.models import OperatorAction
    from tests.factories import user_in

    schedule = make(name="hourly report")
    operator = Client()
    operator.force_login(user_in("Operators"))
    page = operator.get("/scheduled/").content.decode()
    assert "hourly report" in page and "every 60 s" in page and "Run now" in page
    operator.post(f"/schedules/{schedule.pk}/disable/")
    assert not Schedule.objects.get(pk=schedule.pk).enabled
    operator.post(f"/schedules/{schedule.pk}/enable/")
    assert Schedule.objects.get(pk=schedule.pk).enabled
    operator.post(f"/schedules/{schedule.pk}/run-now/")
    assert JobRecord.objects.filter(schedule=schedule).count() == 1
    assert OperatorAction.objects.filter(origin="web").count() == 3
    viewer = Client()
    viewer.force_login(user_in("Viewers"))
    assert "Run now" not in viewer.get("/scheduled/").content.decode()
    assert viewer.post(f"/schedules/{schedule.pk}/disable/").status_code == 403
    assert operator.post("/schedules/9999/disable/").status_code == 404
