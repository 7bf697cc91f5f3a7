"""Bad input gets a clear error naming the field, and nothing is written."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import JobRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task": "no.such.task"}, "task"),
        ({"task": "os.system", "payload": {"command": "true"}}, "task"),
        ({"task": "demo.echo", "payload": {}}, "payload.text"),
        ({"task": "demo.echo", "payload": {"text": 5}}, "payload.text"),
        ({"task": "demo.echo", "payload": "{not json"}, "payload"),
        ({"task": "demo.echo", "payload": "[1, 2]"}, "payload"),
        ({"task": "demo.echo", "payload": {"text": "x" * 1_100_000}}, "payload"),
        (
            {"task": "demo.echo", "payload": json.dumps({"text": "x" * 1_100_000})},
            "payload",
        ),
        ({"task": "demo.echo", "payload": {"text": "a"}, "delay": -1}, "delay"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "delay": "soon"}, "delay"),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "depends_on": ["nope"]},
            "depends_on",
        ),
        ({"task": "demo.echo", "payload": {"text": "a"}, "queue": "nowhere"}, "queue"),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "priority": "urgent"},
            "priority",
        ),
        (
            {
                "task": "demo.echo",
                "payload": {"text": "a"},
                "run_at": datetime(2030, 1, 1),
            },
            "run_at",
        ),
        (
            {
                "task": "demo.echo",
                "payload": {"text": "a"},
                "delay": 5,
                "run_at": timezone.now() + timedelta(minutes=1),
            },
            "delay",
        ),
        (
            {
                "task": "demo.echo",
                "payload": {"text": "a"},
                "retry": {"max_attempts": 0},
            },
            "retry",
        ),
        ({"task": "demo.echo", "payload": {"text": "a"}, "timeout": 0}, "timeout"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "timeout": 86_401}, "timeout"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "timeout": "5"}, "timeout"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "timeout": 1.5}, "timeout"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "timeout": True}, "timeout"),
        # What the chaos run's 1,000 random submissions found (500s or bad rows).
        ({"task": "demo.echo", "payload": {"text": "a\x00b"}}, "payload"),
        ({"task": "demo.echo", "payload": "[" * 100_000}, "payload"),
        ({"task": "demo.echo", "payload": {"text": "a\udcff"}}, "payload.text"),
        (
            {
                "task": "demo.echo",
                "payload": {"text": "a"},
                "idempotency_key": "\udcff",
            },
            "idempotency_key",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "depends_on": ["\udcff"]},
            "depends_on",
        ),
        ({"task": "demo.cpu", "payload": '{"ms": NaN}'}, "payload.ms"),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"cap": None}},
            "retry",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"cap": {}}},
            "retry",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"jitter": -1}},
            "retry",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"jitter": "x"}},
            "retry",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"base": 1e309}},
            "retry",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"cap": 1e30}},
            "retry",
        ),
        ({"task": "demo.echo", "payload": {"text": "a"}, "retry": {"x": 1}}, "retry"),
        ({"task": "demo.echo", "payload": {"text": "a"}, "retry": [1]}, "retry"),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "idempotency_key": "\x00"},
            "idempotency_key",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "idempotency_key": 5},
            "idempotency_key",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "depends_on": "abc"},
            "depends_on",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "depends_on": ["a\x00"]},
            "depends_on",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "a"}, "depends_on": [5]},
            "depends_on",
        ),
    ],
)
def test_bad_submission_names_the_field_and_writes_nothing(kwargs, field):
    with pytest.raises(services.InvalidInput) as caught:
        services.job_submit(**kwargs)
    assert field in caught.value.errors, caught.value.errors
    assert JobRecord.objects.count() == 0


def test_one_bad_request_in_a_bulk_submission_writes_nothing():
    with pytest.raises(services.InvalidInput):
        services.job_submit_many(
            requests=[
                services.SubmitRequest(task="demo.echo", payload={"text": "fine"}),
                services.SubmitRequest(task="demo.echo", payload={"wrong": 1}),
            ]
        )
    assert JobRecord.objects.count() == 0


def test_payload_is_stored_as_validated_by_the_schema():
    job = services.job_submit(task="demo.fail", payload='{"times": 1}')
    assert JobRecord.objects.get(pk=job.pk).payload == {
        "times": 1,
        "message": "demo failure",
    }


def test_a_whole_number_with_a_fraction_is_an_integer_as_json_schema_says():
    """The API document says `ms` is an integer; JSON Schema counts 4096.0 as
    one (schemathesis sends such numbers). Stored as the integer; a real
    fraction or a string is still refused, and a float field keeps its 2.0."""
    job = services.job_submit(task="demo.cpu", payload={"ms": 4096.0})
    assert JobRecord.objects.get(pk=job.pk).payload["ms"] == 4096
    assert isinstance(JobRecord.objects.get(pk=job.pk).payload["ms"], int)
    for wrong in (4096.5, "4096", True):
        with pytest.raises(services.InvalidInput) as caught:
            services.job_submit(task="demo.cpu", payload={"ms": wrong})
        assert "payload.ms" in caught.value.errors, (wrong, caught.value.errors)
    slept = services.job_submit(task="demo.sleep", payload={"seconds": 2.0})
    assert JobRecord.objects.get(pk=slept.pk).payload == {"seconds": 2.0}
    assert JobRecord.objects.count() == 2
