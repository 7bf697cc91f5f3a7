"""Counters kept in Redis by the workers themselves."""

from __future__ import annotations

import pytest

from jobs import services, stats
from jobs.backend import connect
from jobs.models import JobRecord
from tests.conftest import final

pytestmark = pytest.mark.django_db(transaction=True)


def test_counters_match_a_known_scenario(run_until):
    ok = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(10)
    ]
    dead = [
        services.job_submit(
            task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
        )
        for _ in range(3)
    ]
    retried = [
        services.job_submit(task="demo.fail", payload={"times": 1}, retry={"base": 0.1})
        for _ in range(2)
    ]
    run_until(final(*ok, *dead, *retried))
    totals = stats.totals(connect.connection())
    assert totals[("default", "demo.echo", "processed")] == 10
    assert totals[("default", "demo.fail", "dead")] == 3
    assert totals[("default", "demo.fail", "retried")] == 2
    assert totals[("default", "demo.fail", "processed")] == 2
    assert totals[("default", "demo.fail", "failed")] == 5
    points = stats.series(connect.connection(), minutes=5)
    assert sum(p.get("default", "processed") for p in points) == 12
    assert sum(p.get("default", "failed") for p in points) == 5
    histogram = stats.durations(connect.connection())
    assert sum(v for k, v in histogram["demo.echo"].items() if k != "sum") == 10
    assert JobRecord.objects.filter(status="succeeded").count() == 12
