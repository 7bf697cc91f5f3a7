"""The Submit screen in a real Chromium: the task's schema and example follow
the task select (htmx), and a job submitted with a run-at time lands on its page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs.models import JobRecord
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operator_picks_a_task_sees_its_example_and_schedules_it(
    page: Page, live_server: LiveServer
):
    login(page, live_server, user_in("Operators"))
    page.goto(live_server.url + "/submit/")
    panel = page.locator("#task-schema")

    page.select_option("#id_task", "demo.progress")
    expect(panel.locator("h2")).to_have_text("demo.progress")
    rows = panel.locator("table.schema-fields tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("steps")
    expect(rows.first).to_contain_text("integer, ≥ 1, ≤ 10,000")
    payload = page.locator("#id_payload")
    expect(payload).to_have_value(json.dumps({"steps": 10, "delay": 0.5}, indent=2))
    expect(page.locator("label[for=id_run_at] + input + small")).to_contain_text(
        "Time zone: UTC"
    )

    when = (timezone.localtime() + timedelta(hours=3)).replace(second=0, microsecond=0)
    page.fill("#id_run_at", when.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_idempotency_key", "nightly-progress-check")
    page.evaluate("document.activeElement.blur()")
    shot(page, "submit")
    with page.expect_navigation():
        page.get_by_role("button", name="Submit", exact=True).click()

    job = JobRecord.objects.get()
    assert page.url == f"{live_server.url}/jobs/{job.pk}/"
    assert job.task == "demo.progress"
    assert job.payload == {"steps": 10, "delay": 0.5}
    assert job.run_at == when
    assert job.status == JobRecord.Status.SCHEDULED
    assert job.idempotency_key == "nightly-progress-check"
    assert job.submitted_by is not None
    expect(page.locator("ul.messages")).to_contain_text(f"as job {job.pk}")


def test_a_payload_written_by_hand_survives_a_task_change(
    page: Page, live_server: LiveServer
):
    login(page, live_server, user_in("Operators"))
    page.goto(live_server.url + "/submit/?task=demo.echo")
    payload = page.locator("#id_payload")
    expect(payload).to_have_value(json.dumps({"text": ""}, indent=2))
    page.fill("#id_payload", '{"text": "mine"}')
    page.fill("#id_delay", "30")

    page.select_option("#id_task", "demo.sleep")
    expect(page.locator("#task-schema h2")).to_have_text("demo.sleep")
    expect(payload).to_have_value('{"text": "mine"}')
    page.get_by_role("link", name="Reset the payload to this example").click()
    expect(payload).to_have_value(json.dumps({"seconds": 0.0}, indent=2))
    expect(page.locator("#id_delay")).to_have_value("30")  # in place, no reload
