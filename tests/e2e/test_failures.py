"""Failures, the Jobs search and the Operator log in a real Chromium."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs import services
from jobs.models import JobRecord, OperatorAction
from tests.conftest import final
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status


def submit_form(page: Page, live_server: LiveServer, task: str, payload: str) -> None:
    page.goto(live_server.url + "/submit/")
    page.select_option("#id_task", task)
    page.fill("#id_payload", payload)
    with page.expect_navigation():
        page.locator("form button[type=submit].primary").click()


def test_dead_job_appears_live_and_is_retried_from_its_group(
    page: Page, live_server: LiveServer, run_until
):
    login(page, live_server, user_in("Operators"))
    submit_form(page, live_server, "demo.fail", json.dumps({"times": -1}))
    job = JobRecord.objects.get()

    page.goto(live_server.url + "/failures/")
    expect(page.locator("#failure-groups .empty")).to_contain_text(
        "No failures. Jobs that exhaust their retries land here."
    )
    run_until(final(job))
    assert JobRecord.objects.get(pk=job.pk).status == Status.DEAD

    # No reload: the 2 s refresh brings the group in.
    group = page.locator("tr.failure-group")
    expect(group).to_have_count(1, timeout=10_000)
    expect(group).to_contain_text("demo.fail")
    expect(group).to_contain_text("DemoFailure")
    expect(group.locator("td.num").first).to_have_text("1")
    group.locator("summary").click()
    expect(group.locator("pre.traceback")).to_contain_text("Traceback")
    page.wait_for_timeout(2500)  # an open example survives the next refresh
    expect(group.locator("pre.traceback")).to_be_visible()
    shot(page, "failures")

    group.get_by_role("button", name="Retry all").click()
    confirm = page.locator("#failures-confirm .confirm-box")
    expect(confirm).to_contain_text("Retry 1 job")
    assert JobRecord.objects.get(pk=job.pk).status == Status.DEAD
    with page.expect_navigation():
        confirm.get_by_role("button", name="Retry 1 job").click()
    expect(page.locator("ul.messages").first).to_contain_text("Retried 1 job")
    expect(page.locator("tr.failure-group")).to_have_count(0)
    assert JobRecord.objects.get(pk=job.pk).status in (Status.PENDING, Status.QUEUED)
    entry = OperatorAction.objects.get(action="retry")
    assert (entry.count, entry.origin, entry.actor_name) == (1, "web", "operators")

    page.get_by_role("navigation", name="Screens").get_by_role(
        "link", name="Operator log"
    ).click()
    row = page.locator("table.audit-table tbody tr").first
    expect(row).to_contain_text("retry")
    expect(row).to_contain_text("operators")
    expect(row).to_contain_text("Web console")
    shot(page, "operator-log")


def test_search_by_keyboard_then_bulk_delete_asks_first(
    page: Page, live_server: LiveServer
):
    for text in ("alpha", "beta", "alpha again"):
        services.job_submit(task="demo.echo", payload={"text": text})
    services.job_submit(task="demo.sleep", payload={"seconds": 1})
    login(page, live_server, user_in("Operators"))
    page.goto(live_server.url + "/jobs/")

    page.keyboard.press("/")
    expect(page.locator("#f-task")).to_be_focused()
    page.keyboard.type("demo.echo")
    page.fill("#f-payload", "alpha")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(
        re.compile(r"task=demo\.echo.*payload=alpha|payload=alpha.*task=demo\.echo")
    )
    expect(page.locator("table.job-table tbody tr")).to_have_count(2)
    expect(page.locator("form.bulk")).to_contain_text("2 jobs")
    shot(page, "jobs-search")

    page.get_by_role("button", name="Delete…").click()  # HTMX: the panel in place
    expect(page.locator(".confirm-box")).to_contain_text("Delete 2 jobs matching")
    assert JobRecord.objects.count() == 4
    with page.expect_navigation():
        page.get_by_role("button", name="Delete 2 jobs").click()
    expect(page.locator("ul.messages")).to_contain_text("Deleted 2 jobs")
    expect(page.locator("#f-payload")).to_have_value("alpha")
    expect(page.locator("td.empty")).to_contain_text("No jobs match this filter")
    assert JobRecord.objects.count() == 2


def test_viewer_sees_the_failures_but_no_actions(
    page: Page, live_server: LiveServer, run_until
):
    job = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
    )
    run_until(final(job))
    login(page, live_server, user_in("Viewers"))
    page.goto(live_server.url + "/failures/")
    expect(page.locator("tr.failure-group")).to_have_count(1)
    expect(page.get_by_role("button", name="Retry all")).to_have_count(0)
    page.goto(live_server.url + "/jobs/")
    expect(page.locator("form.bulk")).to_have_count(0)
