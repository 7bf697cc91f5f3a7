"""The console in a real Chromium: login, submission, escaping, roles."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Dialog, Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs.backend import queueing
from jobs.models import JobRecord
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<script>alert(1)</script>"


def submit_form(page: Page, live_server: LiveServer, task: str, payload: str) -> None:
    page.goto(live_server.url + "/submit/")
    page.select_option("#id_task", task)
    page.fill("#id_payload", payload)
    with page.expect_navigation():
        page.locator("form button[type=submit].primary").click()


def test_anonymous_is_sent_to_login_then_operator_sees_the_overview(
    page: Page, live_server: LiveServer
):
    operator = user_in("Operators")
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    # Anonymous visitors see no navigation.
    expect(page.locator(".topbar nav")).to_have_count(0)
    shot(page, "login")

    login(page, live_server, operator)
    assert page.url == live_server.url + "/"
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    who = page.locator(".topbar .who")
    expect(who).to_contain_text("operators · operator")
    nav = page.locator(".topbar nav")
    expect(nav.get_by_role("link", name="Submit")).to_be_visible()
    nav.get_by_role("link", name="Jobs", exact=True).click()
    expect(page).to_have_url(live_server.url + "/jobs/")
    expect(page.get_by_role("heading", name=re.compile(r"^Jobs\b"))).to_be_visible()
    expect(page.locator("td.empty")).to_contain_text("No jobs match")
    shot(page, "jobs")


def test_submitted_payload_is_shown_as_text_not_run(
    page: Page, live_server: LiveServer
):
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    login(page, live_server, user_in("Operators"))
    submit_form(page, live_server, "demo.echo", json.dumps({"text": XSS}))

    job = JobRecord.objects.get()
    assert page.url == f"{live_server.url}/jobs/{job.pk}/"
    assert re.search(r"/jobs/[^/]+/$", page.url)
    assert job.payload == {"text": XSS}
    assert job.submitted_by is not None
    assert job.submitted_by.username == "operators"
    assert queueing.existing([job.pk]) == {job.pk}  # enqueued in Redis for real
    expect(page.locator("ul.messages")).to_contain_text(f"as job {job.pk}")
    expect(page.locator("pre.mono").first).to_contain_text(XSS)
    assert XSS in (page.text_content("main") or "")
    # The payload is text, not an element.
    assert page.locator("main script").count() == 0
    page.wait_for_timeout(300)  # give a rogue script the chance to run
    assert dialogs == []
    shot(page, "job")


def test_schema_error_is_shown_on_the_payload_field(
    page: Page, live_server: LiveServer
):
    login(page, live_server, user_in("Operators"))
    submit_form(page, live_server, "demo.echo", '{"txt": 1}')

    assert page.url == live_server.url + "/submit/"
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("p.error")).to_have_text("text: Field required")
    expect(field.locator("textarea#id_payload")).to_have_value('{"txt": 1}')
    assert JobRecord.objects.count() == 0
    shot(page, "submit-error")


def test_viewer_has_no_submit_link_and_a_forged_post_is_refused(
    page: Page, live_server: LiveServer
):
    login(page, live_server, user_in("Viewers"))
    page.goto(live_server.url + "/jobs/")
    nav = page.locator(".topbar nav")
    expect(nav.get_by_role("link", name="Jobs")).to_be_visible()
    expect(nav.get_by_role("link", name="Submit")).to_have_count(0)
    expect(page.locator(".topbar .who")).to_contain_text("viewers · viewer")

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "csrftoken" in cookies and "sessionid" in cookies
    response = page.request.post(
        live_server.url + "/submit/",
        form={"task": "demo.echo", "payload": '{"text": "forged"}'},
        headers={"X-CSRFToken": cookies["csrftoken"], "Referer": page.url},
    )
    assert response.status == 403
    # Refused for the missing permission, not because the forgery lacked a token.
    assert "CSRF" not in response.text()
    assert JobRecord.objects.count() == 0

    # Opening the form directly is refused too.
    opened = page.goto(live_server.url + "/submit/")
    assert opened is not None and opened.status == 403
