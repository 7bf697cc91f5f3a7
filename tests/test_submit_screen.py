"""The Submit screen: the chosen task's schema and example, every submission
option through job_submit, its errors on the right fields, and its guards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from pydantic import BaseModel, Field

from jobs import registry, services
from jobs.models import JobDependency, JobRecord, Origin
from jobs.selectors.task_schema import task_schema
from tests.factories import user_in
from tests.html_forms import forms_of, tokens_in_urls

pytestmark = pytest.mark.django_db


def echo(**fields: str) -> dict[str, str]:
    return {"task": "demo.echo", "payload": '{"text": "hi"}', **fields}


def in_an_hour() -> datetime:
    return (timezone.localtime() + timedelta(hours=1)).replace(second=0, microsecond=0)


def test_schema_panel_describes_the_chosen_tasks_fields(operator_client):
    response = operator_client.get("/submit/", {"task": "demo.fail"})
    assert response.status_code == 200
    html = response.content.decode()
    panel = html[html.index('<aside id="task-schema"') :]
    assert '<h2 class="mono">demo.fail</h2>' in panel
    rows = panel.split("<tr>")[2:]
    assert [r.split("</td>")[0].split(">")[-1] for r in rows] == ["times", "message"]
    assert "integer, ≥ -1" in rows[0] and "<strong>required</strong>" in rows[0]
    assert "failing attempts; -1 fails every time" in rows[0]
    assert "optional" in rows[1] and "&quot;demo failure&quot;" in rows[1]
    assert response.context["form"]["task"].value() == "demo.fail"


def test_task_select_swaps_only_the_panel_with_htmx(operator_client):
    response = operator_client.get(
        "/submit/", {"task": "demo.sleep"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.startswith('<aside id="task-schema"')
    assert "<form" not in html and "<h1>" not in html
    assert "number, ≥ 0, ≤ 3,600" in html
    example = json.dumps({"seconds": 0.0}, indent=2).replace('"', "&quot;")
    assert f'data-example="{example}"' in html


@pytest.mark.parametrize("task", [t.name for t in registry.all_tasks()])
def test_every_tasks_example_payload_is_prefilled_and_submits(operator_client, task):
    page = operator_client.get("/submit/", {"task": task})
    payload = page.context["form"]["payload"].value()
    assert payload == task_schema(registry.get(task)).example_json
    registry.get(task).validate(json.loads(payload))  # the schema accepts it

    response = operator_client.post("/submit/", {"task": task, "payload": payload})
    assert response.status_code == 302, response.context["form"].errors
    assert JobRecord.objects.get().task == task


def test_an_unknown_task_in_the_query_shows_the_first_task(operator_client):
    first = registry.all_tasks()[0]
    response = operator_client.get("/submit/", {"task": "no.such"})
    assert response.status_code == 200
    assert response.context["schema"].task == first


class Address(BaseModel):
    city: str = Field(min_length=2)
    zip: str | None = None


class Rich(BaseModel):
    name: str = Field(min_length=3, description="who")
    mode: Literal["fast", "slow"]
    count: int = Field(gt=5, le=9)
    ratio: float = Field(lt=0)
    tags: list[str] = Field(min_length=1)
    at: datetime
    home: Address
    note: str | None = None
    flag: bool = True


def test_example_of_a_richer_schema_validates_and_reads_well():
    rich = registry.TaskDef(name="t.rich", func=print, schema=Rich)
    schema = task_schema(rich)
    assert schema.example_valid
    Rich.model_validate(schema.example)
    assert schema.example["mode"] == "fast" and schema.example["count"] == 6
    types = {f.name: f.type for f in schema.fields}
    assert types["name"] == "string, at least 3 characters"
    assert types["mode"] == 'one of: "fast", "slow"'
    assert types["count"] == "integer, > 5, ≤ 9"
    assert types["tags"] == "list of string, 1 or more items"
    assert types["at"] == "string, date-time"
    assert types["home"] == "object (Address)"
    assert types["note"] == "string or null"
    required = {f.name for f in schema.fields if f.required}
    assert required == {"name", "mode", "count", "ratio", "tags", "at", "home"}
    assert {f.name: f.default for f in schema.fields}["flag"] == "true"


@pytest.mark.django_db(transaction=True)
def test_each_option_reaches_the_job_record(operator_client):
    parent = services.job_submit(task="demo.echo", payload={"text": "first"})
    queue = [q for q in settings.JOB_QUEUES if q != "default"][0]
    when = in_an_hour()
    response = operator_client.post(
        "/submit/",
        echo(
            queue=queue,
            priority="high",
            run_at=when.strftime("%Y-%m-%dT%H:%M"),
            depends_on=f" {parent.pk}, ",
            allow_failure="on",
            idempotency_key="report-2026-12",
            timeout="42",
            retry_max_attempts="7",
            retry_cap="60",
        ),
    )
    job = JobRecord.objects.exclude(pk=parent.pk).get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.queue, job.priority, job.run_at) == (queue, "high", when)
    assert (job.idempotency_key, job.timeout, job.max_attempts) == (
        "report-2026-12",
        42,
        7,
    )
    assert job.retry_policy["cap"] == 60
    dependency = JobDependency.objects.get(child=job)
    assert (dependency.parent_id, dependency.allow_failure) == (parent.pk, True)
    assert job.origin == Origin.WEB
    assert job.submitted_by is not None
    assert job.submitted_by.username == "operators"


@pytest.mark.django_db(transaction=True)
def test_a_delay_sets_the_run_time_from_the_submission(operator_client):
    operator_client.post("/submit/", echo(delay="90"))
    job = JobRecord.objects.get()
    assert job.run_at == job.submitted_at + timedelta(seconds=90)
    assert job.status == JobRecord.Status.SCHEDULED


def test_delay_and_run_at_together_is_a_form_error(operator_client):
    response = operator_client.post(
        "/submit/",
        echo(delay="60", run_at=in_an_hour().strftime("%Y-%m-%dT%H:%M")),
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors == {"delay": ["give a delay or a run-at time, not both"]}
    assert b"give a delay or a run-at time, not both" in response.content
    assert JobRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"task": "no.such"}, "task", "unknown task 'no.such'"),
        ({"queue": "nowhere"}, "queue", "unknown queue 'nowhere'"),
        ({"priority": "urgent"}, "priority", "unknown priority 'urgent'"),
        ({"timeout": "0"}, "timeout", "must be between 1 and"),
        ({"timeout": "soon"}, "timeout", "Enter a whole number."),
        ({"delay": "-1"}, "delay", "must be between 0 and one year"),
        ({"run_at": "tomorrow"}, "run_at", "Enter a valid date/time."),
        ({"depends_on": "abc123"}, "depends_on", "no such job: abc123"),
        ({"idempotency_key": "a\x07b"}, "idempotency_key", "printable characters"),
        ({"idempotency_key": "k" * 201}, "idempotency_key", "at most 200"),
        ({"retry_max_attempts": "0"}, "retry_max_attempts", "max_attempts must be"),
        ({"retry_jitter": "2"}, "retry_jitter", "jitter must be a number from 0"),
        ({"payload": "[1]"}, "payload", "must be a JSON object"),
    ],
)
def test_bad_input_is_an_error_on_its_field(operator_client, given, field, message):
    response = operator_client.post("/submit/", echo(**given))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert JobRecord.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_retry_overrides_open_when_one_is_refused(operator_client):
    response = operator_client.post("/submit/", echo(retry_factor="99"))
    assert b'<details class="retry-options" open>' in response.content
    page = operator_client.get("/submit/")
    assert b'<details class="retry-options">' in page.content


def test_a_reused_idempotency_key_shows_the_first_job_and_says_so(operator_client):
    operator_client.post("/submit/", echo(idempotency_key="once"))
    first = JobRecord.objects.get()
    again = operator_client.post("/submit/", echo(idempotency_key="once"), follow=True)
    assert again.redirect_chain[-1][0] == f"/jobs/{first.pk}/"
    assert JobRecord.objects.count() == 1
    assert b"Nothing new was submitted" in again.content


def test_a_link_prefills_fields_and_another_task_gets_its_example(operator_client):
    response = operator_client.get(
        "/submit/",
        {"task": "demo.sleep", "payload": '{"text": "x"}', "queue": "mail"},
    )
    assert response.context["form"]["payload"].value() == '{"text": "x"}'
    assert response.context["form"]["queue"].value() == "mail"
    # What the no-JS "show" form sends: the task alone.
    response = operator_client.get("/submit/", {"task": "demo.sleep"})
    form = response.context["form"]
    assert form["payload"].value() == json.dumps({"seconds": 0.0}, indent=2)


def test_without_javascript_the_schema_form_is_its_own_get_form(operator_client):
    page = operator_client.get("/submit/", {"task": "demo.fail"}).content.decode()
    forms = forms_of(page)
    picker = [f for f in forms if "get" in f.methods]
    assert [f.fields for f in picker] == [["task"]]
    assert tokens_in_urls(page) == []


def test_viewer_is_refused_the_screen_the_panel_and_the_post():
    client = Client()
    client.force_login(user_in("Viewers"))
    assert client.get("/submit/").status_code == 403
    htmx = client.get("/submit/", {"task": "demo.sleep"}, headers={"HX-Request": "1"})
    assert htmx.status_code == 403
    assert client.post("/submit/", echo()).status_code == 403
    assert JobRecord.objects.count() == 0


def test_other_methods_are_refused_with_allow(operator_client):
    response = operator_client.put("/submit/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"


def test_run_at_is_read_in_the_stated_time_zone(operator_client, settings):
    settings.TIME_ZONE = "America/New_York"
    page = operator_client.get("/submit/")
    assert b"Time zone: America/New_York." in page.content
    # Within the year a run-at may be ahead; New York is UTC-5 in January.
    now = timezone.now()
    year = now.year if now < datetime(now.year, 1, 15, tzinfo=UTC) else now.year + 1
    operator_client.post("/submit/", echo(run_at=f"{year}-01-15T10:00"))
    job = JobRecord.objects.get()
    assert job.run_at == datetime(year, 1, 15, 15, 0, tzinfo=UTC)


def test_a_run_at_past_the_calendars_end_is_a_form_error(operator_client, settings):
    settings.TIME_ZONE = "America/New_York"  # 23:59 on 31 Dec 9999 is year 10000 UTC
    response = operator_client.post("/submit/", echo(run_at="9999-12-31T23:59"))
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["run_at"]
    assert JobRecord.objects.count() == 0


class Coded(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}-\d+$")


def test_an_example_the_schema_refuses_is_said_to_need_filling_in():
    coded = registry.TaskDef(name="t.coded", func=print, schema=Coded)
    schema = task_schema(coded)
    assert not schema.example_valid
    assert schema.fields[0].type == "string, matching ^[A-Z]{3}-\\d+$"


def test_no_console_page_can_put_the_csrf_token_in_a_url(operator_client):
    """The class of the Submit screen's old no-JS button: any GET form (or
    formmethod=get button) that carries the token leaks it into URLs, logs
    and Referer headers."""
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    pages = [
        "/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        "/failures/",
        "/queues/default/",
        "/scheduled/",
        "/workers/",
        "/alerts/",
        "/operator-log/",
        "/submit/",
    ]
    for url in pages:
        page = operator_client.get(url)
        assert page.status_code == 200, url
        assert tokens_in_urls(page.content.decode()) == [], url
