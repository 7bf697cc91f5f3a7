"""The overview, a queue's page and the workers screen in a real Chromium."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from jobs import services, stats
from jobs.backend import connect, live
from jobs.backend.queues import paused_queues
from jobs.backend.slots import SlotWorker
from jobs.backend.workers import ConsoleWorker
from jobs.models import Attempt, JobRecord, OperatorAction
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def history() -> None:
    """An hour of counters (as workers and the monitor write them), so the
    charts have something to draw."""
    now = time.time()
    with connect.connection().pipeline() as pipe:
        for minutes_ago in range(60):
            at = now - 60 * minutes_ago
            busy = int(6 + 5 * math.sin(minutes_ago / 6))
            for n in range(busy):
                stats.count_outcome(
                    pipe,
                    queue="default" if n % 3 else "mail",
                    task="demo.echo",
                    outcome="processed",
                    duration=0.05,
                    at=at,
                )
            if minutes_ago % 9 == 0:
                stats.count_outcome(
                    pipe,
                    queue="reports",
                    task="demo.fail",
                    outcome="failed",
                    duration=0.2,
                    at=at,
                )
            stats.record_oldest_wait(
                pipe,
                {"default": 2.0 + minutes_ago % 5, "mail": 40.0 - minutes_ago / 2},
                at=at,
            )
        pipe.execute()
    _finished_work()


def _finished_work() -> None:
    """Recorded history for the headline: jobs that succeeded, and one that
    failed three attempts and went dead in the last hour."""
    finished = timezone.now() - timedelta(minutes=5)
    for n in range(12):
        JobRecord.objects.create(
            id=f"done-{n}",
            task="demo.echo",
            queue="default" if n % 3 else "mail",
            status=JobRecord.Status.SUCCEEDED,
            submitted_at=finished,
            finished_at=finished,
        )
    dead = JobRecord.objects.create(
        id="gave-up",
        task="demo.fail",
        queue="reports",
        status=JobRecord.Status.DEAD,
        attempts=3,
        max_attempts=3,
        submitted_at=finished,
        finished_at=finished,
    )
    for number in (1, 2, 3):
        Attempt.objects.create(
            job=dead, number=number, outcome="failed", finished_at=finished
        )


@pytest.fixture
def worker() -> Iterator[ConsoleWorker]:
    """A registered worker (not working: the browser test only looks at it),
    a worker with 8 slots running 3 jobs in its job processes, and one that
    died a few minutes ago, as the monitor remembers it."""
    client = connect.connection()
    alive = ConsoleWorker(["default", "mail"], connection=client)
    alive.register_birth()
    alive.set_state("idle")
    alive.heartbeat()
    slotted = SlotWorker(["default"], connection=client, concurrency=8)
    slotted.register_birth()
    slotted.heartbeat()
    client.hset(
        slotted.key,
        mapping={
            "state": "busy",
            "concurrency": "8",
            "slots_busy": "3",
            "job_processes": "8",
            "job_processes_kb": str(76 * 1024),
        },
    )
    for number in range(3):
        JobRecord.objects.create(
            id=f"slot-job-{number}",
            task="demo.sleep",
            queue="default",
            status=JobRecord.Status.STARTED,
            submitted_at=timezone.now(),
            worker_name=slotted.name,
        )
    client.hset(
        live.WORKERS_SEEN,
        "worker-2.4242.dead",
        json.dumps(
            {
                "hostname": "worker-2",
                "pid": 4242,
                "queues": ["reports:high", "reports", "reports:low"],
                "seen": time.time() - 240,
            }
        ),
    )
    yield alive
    alive.register_death()
    slotted.register_death()


def test_operator_pauses_a_queue_sees_a_job_wait_then_resumes(
    page: Page, live_server: LiveServer, history: None, worker: ConsoleWorker
):
    login(page, live_server, user_in("Operators"))
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    queues = page.locator("table.queues")
    expect(queues.locator("tbody tr")).to_have_count(3)
    expect(page.locator("#charts svg.chart")).to_have_count(3)

    queues.get_by_role("link", name="mail", exact=True).click()
    expect(page).to_have_url(live_server.url + "/queues/mail/")
    page.fill("#pause-reason", "mail provider down")
    page.get_by_role("button", name="Pause mail").click()
    status = page.locator(".queue-status")
    expect(status.locator(".state-paused")).to_have_text("paused")
    expect(status).to_contain_text("by operators")
    expect(status).to_contain_text("mail provider down")
    expect(page.locator("#queue-panel ul.messages")).to_contain_text("Paused mail")
    assert page.url == live_server.url + "/queues/mail/"  # updated in place

    job = services.job_submit(
        task="demo.echo", payload={"text": "waiting"}, queue="mail"
    )
    # The live panel picks the job up on its next refresh, without a reload.
    waiting = page.locator(f'#queue-live a[href="/jobs/{job.pk}/"]')
    expect(waiting).to_be_visible(timeout=6000)
    row = page.locator("#queue-live tbody tr").filter(
        has=page.locator(f'a[href="/jobs/{job.pk}/"]')
    )
    expect(row.locator(".state")).to_have_text("Queued")
    expect(page.locator("label.confirm")).to_contain_text(
        "Yes, cancel all 1 waiting job in mail"
    )
    shot(page, "queue")

    page.goto(live_server.url + "/")
    mail_row = queues.locator("tr", has=page.get_by_role("link", name="mail"))
    expect(mail_row).to_have_class(re.compile(r"\bpaused\b"))
    expect(mail_row.locator(".state-paused")).to_have_text("paused")
    expect(mail_row.locator('a[href="/jobs/?queue=mail&status=queued"]')).to_have_text(
        "1"
    )
    expect(page.locator(".headline")).to_contain_text("workers alive")
    expect(page.locator("#fig-failed-attempts")).to_have_text("3")
    expect(page.locator("#fig-failed-jobs")).to_have_text("1 job")
    expect(page.locator("#fig-went-dead")).to_have_text("1")
    expect(page.locator("#overview-live .updated time")).to_be_visible()
    shot(page, "overview")

    mail_row.get_by_role("link", name="mail").click()
    page.get_by_role("button", name="Resume mail").click()
    expect(page.locator(".queue-status .state")).to_have_text("active")
    expect(page.locator("#queue-panel ul.messages")).to_contain_text("Resumed mail")
    assert "mail" not in paused_queues()
    # No worker ran in this test: the job still waits, now in an active queue.
    assert JobRecord.objects.get(pk=job.pk).status == JobRecord.Status.QUEUED
    assert list(OperatorAction.objects.values_list("action", flat=True)) == [
        "resume",
        "pause",
    ]

    page.get_by_role("link", name="Workers").click()
    table = page.locator("table.workers")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tr", has_text=worker.name).locator(".state")).to_have_text(
        "idle"
    )
    dead = table.locator("tr.dead")
    expect(dead).to_contain_text("worker-2.4242.dead")
    expect(dead.locator(".state-dead")).to_have_text("dead")
    expect(dead).to_contain_text("last seen")
    slotted = table.locator("tr", has=page.locator("a.running-jobs"))
    expect(slotted.locator(".slots")).to_have_text("3 / 8")
    expect(slotted.locator(".job-memory")).to_have_text("+ 76.0 MB in 8 job processes")
    shot(page, "workers")
    slotted.get_by_role("link", name="3 running").click()
    expect(page.locator("#f-worker")).to_have_value(re.compile(r"\.\d+\."))
    rows = page.locator("table.job-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("slot-job-")


def test_viewer_sees_the_queue_page_without_buttons(
    page: Page, live_server: LiveServer
):
    services.queue_pause(name="reports", actor=None, reason="nightly maintenance")
    login(page, live_server, user_in("Viewers"))
    page.goto(live_server.url + "/queues/reports/")
    expect(page.locator(".queue-status")).to_contain_text("nightly maintenance")
    expect(page.locator("main button")).to_have_count(0)
    missing = page.goto(live_server.url + "/queues/nope/")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("link", name="Back to the overview")).to_be_visible()
