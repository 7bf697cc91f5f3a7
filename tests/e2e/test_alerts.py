"""The alert banner on every page, opened by the monitor's evaluation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs import services
from jobs.defaults import ensure_default_alert_rules
from jobs.models import AlertRule
from jobs.processes import alerts
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_no_live_worker_alert_shows_as_a_banner_on_every_page(
    page: Page, live_server: LiveServer
) -> None:
    ensure_default_alert_rules(AlertRule)
    AlertRule.objects.exclude(kind=AlertRule.Kind.NO_WORKER).update(enabled=False)
    services.job_submit(task="demo.echo", payload={"text": "nobody takes me"})
    opened, _ = alerts.evaluate()
    assert len(opened) == 1
    login(page, live_server, user_in("Viewers"))
    for path in ("/", "/jobs/", "/workers/"):
        page.goto(live_server.url + path)
        banner = page.locator(".alert-banner")
        expect(banner).to_contain_text("no live worker")
    page.locator(".alert-banner a").first.click()
    expect(page.locator("h1")).to_have_text("Alerts")
    expect(page.locator(".alert-card")).to_contain_text("default: 1 jobs waiting")
    shot(page, "alerts")
