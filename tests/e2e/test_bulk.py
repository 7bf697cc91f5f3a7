"""Bulk actions in a real browser: HTMX shows the confirmation in place of the
bulk form, and nothing happens until it is confirmed."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs.models import JobRecord
from tests.e2e.conftest import login
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
Status = JobRecord.Status


def test_bulk_cancel_asks_in_place_then_acts_on_the_filtered_jobs(
    page: Page, live_server: LiveServer
) -> None:
    for n in range(3):
        JobRecord.objects.create(
            id=f"echo-{n}",
            task="demo.echo",
            status=Status.QUEUED,
            submitted_at=timezone.now(),
        )
    JobRecord.objects.create(
        id="other", task="demo.sleep", status=Status.QUEUED, submitted_at=timezone.now()
    )
    login(page, live_server, user_in("Operators"))
    page.goto(live_server.url + "/jobs/?task=demo.echo")
    page.get_by_role("button", name="Cancel…").click()
    box = page.locator("#bulk .confirm-box")
    expect(box).to_contain_text("Cancel 3 jobs matching task=demo.echo")
    assert page.url.endswith("/jobs/?task=demo.echo")  # in place, no navigation
    assert set(JobRecord.objects.values_list("status", flat=True)) == {Status.QUEUED}
    with page.expect_navigation():
        box.get_by_role("button", name="Cancel 3 jobs").click()
    expect(page.locator(".messages")).to_contain_text("Canceled 3 jobs")
    statuses = dict(JobRecord.objects.values_list("pk", "status"))
    assert statuses.pop("other") == Status.QUEUED
    assert set(statuses.values()) == {Status.CANCELED}
