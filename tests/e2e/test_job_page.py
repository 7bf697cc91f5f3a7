"""The job page in a real Chromium: live progress of a running job; the
scheduled screen."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer
from rq.timeouts import TimerDeathPenalty

from jobs import services
from jobs.backend import connect
from jobs.backend.workers import ConsoleWorker
from jobs.models import JobRecord
from jobs.processes.recorder import Recorder
from tests.conftest import final
from tests.e2e.conftest import login, shot
from tests.factories import user_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class ThreadedWorker(ConsoleWorker):
    """A forking worker that can run in a background thread of the test
    process (so it shares the test database): Python lets only the main thread
    install signal handlers, which RQ does for shutdown and for its horse
    monitor's timeout; a timer thread stands in for the latter."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


@pytest.fixture
def background() -> Iterator[Callable[[], None]]:
    """Start one burst worker and a recorder loop in threads of this process."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def record() -> None:
        recorder = Recorder(consumer="e2e")
        try:
            while not stop.is_set():
                recorder.drain(block_ms=200)
        finally:
            connections.close_all()

    def work() -> None:
        try:
            ThreadedWorker(["default"], connection=connect.connection()).work(
                burst=True, logging_level="WARNING"
            )
        finally:
            connections.close_all()

    def start() -> None:
        for target in (work, record):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


def progress_value(page: Page) -> float:
    return float(page.locator("#job-progress progress").get_attribute("value") or 0)


def test_running_job_shows_its_progress_moving_then_its_final_state(
    page: Page, live_server: LiveServer, background: Callable[[], None]
):
    login(page, live_server, user_in("Operators"))
    # 1 s a step: the job reports 10 % to 90 % for 9 s, several poll periods,
    # so the page sees it under way even on a loaded machine (with 5 steps a
    # starved browser once saw only the end).
    job = services.job_submit(task="demo.progress", payload={"steps": 10, "delay": 1.0})
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    expect(page.locator("#job-poll")).to_contain_text("Live")
    background()

    bar = page.locator("#job-progress progress[value]")
    expect(bar).to_have_count(1, timeout=15_000)
    first = progress_value(page)
    assert 0 < first < 100, "a poll lands while the job is under way"
    expect(page.locator("#job-progress .log")).to_contain_text("of 10")
    shot(page, "job-running")

    page.wait_for_function(
        "v => Number(document.querySelector('#job-progress progress')"
        ".getAttribute('value')) > v",
        arg=first,
        timeout=15_000,
    )
    assert progress_value(page) > first

    header = page.locator("#job-header h1 .state")
    expect(header).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#job-poll")).to_contain_text("no longer refreshes")
    expect(page.locator("#job-progress .pct")).to_have_text("100%")
    expect(page.locator("#job-progress .log li")).to_have_count(10)
    expect(page.locator("pre.result")).to_contain_text('"steps": 10')
    expect(page.locator("table.attempts .state")).to_have_text("Succeeded")
    assert JobRecord.objects.get(pk=job.pk).status == JobRecord.Status.SUCCEEDED
    # Polling stopped: no element is left that htmx polls (it stops polling an
    # element once it leaves the page), so nothing replaces the final page.
    expect(page.locator("[hx-trigger*='every']")).to_have_count(0)
    expect(header).to_have_text("Succeeded")
    shot(page, "job")


def test_scheduled_screen_runs_a_job_now(page: Page, live_server: LiveServer):
    login(page, live_server, user_in("Operators"))
    page.goto(f"{live_server.url}/scheduled/")
    expect(page.locator("#scheduled-jobs")).to_contain_text("Nothing scheduled.")

    soon = services.job_submit(task="demo.echo", payload={"text": "soon"}, delay=90)
    services.job_submit(
        task="demo.sleep", payload={"seconds": 2}, queue="reports", delay=4000
    )
    services.job_submit(task="demo.fail", payload={"times": 1}, queue="mail", delay=600)
    rows = page.locator("table.scheduled tbody tr")
    expect(rows).to_have_count(3, timeout=5_000)  # the table polls
    expect(rows.first).to_contain_text("demo.echo")
    expect(rows.first.locator("td.due")).to_contain_text("in 1 min")
    shot(page, "scheduled")

    with page.expect_navigation():
        rows.first.get_by_role("button", name=f"Run job {soon.pk} now").click()
    assert page.url == f"{live_server.url}/scheduled/"
    expect(page.locator("ul.messages")).to_contain_text(
        f"Job {soon.pk} moved to the front of its queue."
    )
    expect(rows).to_have_count(2)


def test_dead_job_shows_its_traceback_and_is_deleted_only_once_confirmed(
    page: Page, live_server: LiveServer, run_until: Callable[..., None]
):
    parent = services.job_submit(
        task="demo.fail",
        payload={"times": -1, "message": "<b>boom</b>"},
        retry={"max_attempts": 2, "base": 0.1, "jitter": 0},
    )
    child = services.job_submit(
        task="demo.echo", payload={"text": "after"}, depends_on=[parent.pk]
    )
    run_until(final(parent))
    login(page, live_server, user_in("Operators"))
    page.goto(f"{live_server.url}/jobs/{parent.pk}/")
    expect(page.locator("#job-header .state")).to_have_text("Dead")
    tracebacks = page.locator("table.attempts details")
    expect(tracebacks).to_have_count(2)
    expect(tracebacks.last).to_have_attribute("open", "")
    expect(tracebacks.last.locator("pre")).to_contain_text("DemoFailure: <b>boom</b>")
    expect(page.get_by_role("link", name=child.pk[:13] + "…")).to_be_visible()
    page.screenshot(path="/tmp/job-dead.png", full_page=True)

    page.locator("details.confirm summary").click()
    delete = page.get_by_role("button", name="Delete 1 job")
    delete.click()  # the box is not ticked: the browser refuses to submit
    assert page.url == f"{live_server.url}/jobs/{parent.pk}/"
    page.get_by_label("Yes, delete this 1 job").check()
    page.screenshot(path="/tmp/job-delete.png", full_page=True)
    with page.expect_navigation():
        delete.click()
    assert page.url == f"{live_server.url}/jobs/"
    expect(page.locator("ul.messages")).to_contain_text("Deleted 1 job")
    assert not JobRecord.objects.filter(pk=parent.pk).exists()

    page.goto(f"{live_server.url}/jobs/{parent.pk}/")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.screenshot(path="/tmp/job-404.png", full_page=True)
    page.get_by_role("link", name="← Back to jobs").click()
    assert page.url == f"{live_server.url}/jobs/"
