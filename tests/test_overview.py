"""The overview, the queue page, the workers screen and their SVG charts."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from console.localredis import free_port
from jobs import charts, services, stats
from jobs.backend import connect, live, queues
from jobs.backend.workers import ConsoleWorker
from jobs.models import Attempt, JobRecord, OperatorAction
from jobs.selectors import overview as overview_selectors
from jobs.selectors import workers as worker_selectors

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def redis_down(settings: Any) -> Iterator[None]:
    """Point the console at a port where nothing listens."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    yield
    connect._connections.clear()


def dead_job(queue: str, job_id: str = "dead-1") -> JobRecord:
    return JobRecord.objects.create(
        id=job_id,
        task="demo.fail",
        queue=queue,
        status=JobRecord.Status.DEAD,
        submitted_at=timezone.now(),
    )


def submit(count: int, queue: str = "default") -> list[JobRecord]:
    return [
        services.job_submit(task="demo.echo", payload={"text": str(n)}, queue=queue)
        for n in range(count)
    ]


def html(response: Any) -> str:
    return response.content.decode()


# -- overview ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_overview_shows_every_queue_with_depths_and_paused_queues(operator_client):
    submit(2)
    services.queue_pause(name="mail", actor=None, reason="provider <down>")
    dead_job("reports")

    response = operator_client.get("/")
    page = html(response)

    assert response.status_code == 200
    for name in settings.JOB_QUEUES:
        assert f'href="/queues/{name}/"' in page
    assert re.search(
        r'href="/jobs/\?queue=default&amp;status=queued">\s*2\s*</a>', page
    )
    assert re.search(r'href="/jobs/\?queue=reports&amp;status=dead">\s*1\s*</a>', page)
    assert re.search(r'<tr class="paused">\s*<th scope="row"><a[^>]*>mail<', page)
    assert 'class="state state-paused">paused</span>' in page
    assert "provider &lt;down&gt;" in page
    assert "provider <down>" not in page
    # Headline: waiting and dead link to the jobs behind them.
    assert re.search(r'href="/jobs/\?status=queued">2</a>', page)
    assert re.search(r'href="/jobs/\?status=dead">1</a>', page)
    assert "<svg" in page and "jobs/min" in page


@pytest.mark.django_db(transaction=True)
def test_overview_figures_and_workers_per_queue(operator_client):
    """Finished work comes from the history over the last hour; an old
    success is outside the window."""
    now = timezone.now()
    for n in range(10):
        finished_job(f"ok-{n}", "mail", JobRecord.Status.SUCCEEDED, now)
    finished_job("old", "mail", JobRecord.Status.SUCCEEDED, now - timedelta(hours=2))
    dead = finished_job("died", "mail", JobRecord.Status.DEAD, now)
    Attempt.objects.create(
        job=dead, number=1, outcome=Attempt.Outcome.FAILED, finished_at=now
    )
    client = connect.connection()
    worker = ConsoleWorker(["mail"], connection=client)
    worker.register_birth()
    worker.heartbeat()
    try:
        data = overview_selectors.overview()
    finally:
        worker.register_death()
    mail = next(r for r in data.queues if r.name == "mail")
    default = next(r for r in data.queues if r.name == "default")
    assert (mail.figures.succeeded, mail.figures.failed_attempts) == (10, 1)
    assert (mail.figures.went_dead, mail.figures.dead) == (1, 1)
    assert (mail.workers, default.workers) == (1, 0)
    assert data.headline.figures.failed_attempts == 1
    assert data.headline.figures.failed_jobs == 1
    assert data.headline.workers_alive == 1
    assert data.at >= now


def finished_job(job_id: str, queue: str, status: str, at: Any) -> JobRecord:
    return JobRecord.objects.create(
        id=job_id,
        task="demo.echo",
        queue=queue,
        status=status,
        submitted_at=at,
        finished_at=at,
    )


def test_overview_reads_are_bounded_whatever_the_history(
    operator_client, django_assert_max_num_queries
):
    submit(3)
    for n in range(5):
        dead_job("default", f"dead-{n}")
    # Session, user, the viewer permission (two reads), queue states, then
    # COUNT/GROUP BY reads (dead per queue and in all, the window); never job rows.
    with django_assert_max_num_queries(9):
        response = operator_client.get("/overview/live/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_live_endpoint_returns_only_the_partial(operator_client):
    submit(1)
    response = operator_client.get("/overview/live/", HTTP_HX_REQUEST="true")
    page = html(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="overview-live"')
    assert "<html" not in page and "topbar" not in page
    assert "every 2s [document.visibilityState === 'visible']" in page
    assert "updated" in page
    assert re.search(r'href="/jobs/\?queue=default&amp;status=queued">1</a>', page)
    charts_part = html(
        operator_client.get(
            "/overview/live/?panel=charts&window=day", HTTP_HX_REQUEST="true"
        )
    )
    assert charts_part.lstrip().startswith('<section id="charts"')
    assert "24 h ago" in charts_part and "<html" not in charts_part


def test_full_page_wraps_the_partial(operator_client):
    page = html(operator_client.get("/"))
    assert "<html" in page and 'id="overview-live"' in page and 'id="charts"' in page


def test_unknown_chart_window_falls_back_to_the_hour(operator_client):
    page = html(operator_client.get("/?window=<year>"))
    assert "60 min ago" in page and "&lt;year&gt;" not in page


@pytest.mark.django_db(transaction=True)
def test_overview_without_redis_still_renders(operator_client, redis_down):
    dead_job("default")
    response = operator_client.get("/")
    page = html(response)
    assert response.status_code == 200
    assert "Redis unavailable" in page
    # Database figures are still there.
    assert re.search(r'href="/jobs/\?status=dead">1</a>', page)
    live = operator_client.get("/overview/live/", HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and "Redis unavailable" in html(live)
    for url in ("/queues/default/", "/workers/"):
        response = operator_client.get(url)
        assert response.status_code == 200 and "Redis unavailable" in html(response)


def test_anonymous_is_sent_to_login():
    client = Client()
    for url in ("/", "/overview/live/", "/queues/default/", "/workers/"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


# -- queue page ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_queue_page_lists_waiting_jobs_linked(operator_client):
    jobs = submit(3)
    page = html(operator_client.get("/queues/default/"))
    for job in jobs:
        assert f'href="/jobs/{job.pk}/"' in page
    assert re.search(r'href="/jobs/\?queue=default&amp;status=queued">3</a>', page)
    assert "Yes, cancel all 3 waiting jobs in default" in page
    assert 'name="expected" value="3"' in page


@pytest.mark.django_db(transaction=True)
def test_unknown_queue_is_a_404_with_a_way_back(operator_client):
    response = operator_client.get("/queues/nope<x>/")
    page = html(response)
    assert response.status_code == 404
    assert "nope&lt;x&gt;" in page and 'href="/"' in page
    assert (
        operator_client.post("/queues/nope/pause/", {"reason": "x"}).status_code == 404
    )
    assert OperatorAction.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_operator_pauses_and_resumes_a_queue(operator_client):
    response = operator_client.post(
        "/queues/mail/pause/", {"reason": "provider down"}, follow=True
    )
    page = html(response)
    assert response.redirect_chain == [("/queues/mail/", 302)]
    assert "Paused mail" in page
    assert "operators" in page and "provider down" in page
    assert "mail" in queues.paused_queues()
    action = OperatorAction.objects.get()
    assert (action.action, action.target, action.reason, action.origin) == (
        "pause",
        "queue mail",
        "provider down",
        "web",
    )
    assert action.actor_name == "operators"
    assert "Resume mail" in page

    response = operator_client.post(
        "/queues/mail/resume/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-panel"
    )
    fragment = html(response)
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<div id="queue-panel">')
    assert "Resumed mail" in fragment and "Pause mail" in fragment
    assert "queues-changed" in response["HX-Trigger"]
    assert "mail" not in queues.paused_queues()
    assert list(OperatorAction.objects.values_list("action", flat=True)) == [
        "resume",
        "pause",
    ]


@pytest.mark.django_db(transaction=True)
def test_pause_without_a_reason_does_nothing(operator_client):
    page = html(
        operator_client.post("/queues/mail/pause/", {"reason": " "}, follow=True)
    )
    assert "Nothing done: say why" in page
    assert OperatorAction.objects.count() == 0
    assert queues.paused_queues() == set()


@pytest.mark.django_db(transaction=True)
def test_operator_empties_a_queue_after_confirming_the_count(operator_client):
    jobs = submit(3)
    unconfirmed = operator_client.post(
        "/queues/default/empty/", {"expected": "3"}, follow=True
    )
    assert "tick the box" in html(unconfirmed)
    assert OperatorAction.objects.count() == 0

    response = operator_client.post(
        "/queues/default/empty/",
        {"expected": "3", "confirm": "yes"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="queue-panel",
    )
    fragment = html(response)
    assert "Canceled 3 jobs from default" in fragment
    statuses = {JobRecord.objects.get(pk=j.pk).status for j in jobs}
    assert statuses == {JobRecord.Status.CANCELED}
    action = OperatorAction.objects.get()
    assert (action.action, action.count, action.target, action.origin) == (
        "cancel",
        3,
        "queue default",
        "web",
    )
    assert "No jobs waiting" in fragment


@pytest.mark.django_db(transaction=True)
def test_empty_refuses_when_more_jobs_arrived_than_confirmed(operator_client):
    submit(3)
    page = html(
        operator_client.post(
            "/queues/default/empty/", {"expected": "2", "confirm": "yes"}, follow=True
        )
    )
    assert "now holds 3 waiting jobs, not the 2 you confirmed" in page
    assert OperatorAction.objects.count() == 0
    assert JobRecord.objects.filter(status=JobRecord.Status.CANCELED).count() == 0


def test_empty_on_an_empty_queue_says_so(operator_client):
    page = html(
        operator_client.post(
            "/queues/mail/empty/", {"expected": "0", "confirm": "yes"}, follow=True
        )
    )
    assert "Nothing done: mail has no waiting jobs" in page
    assert OperatorAction.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_viewer_sees_no_buttons_and_every_action_is_refused(viewer_client):
    submit(1)
    page = html(viewer_client.get("/queues/default/"))
    assert "/queues/default/pause/" not in page
    assert "/queues/default/empty/" not in page
    assert "<button" not in page.split('id="queue-panel"', 1)[1]
    for action, data in (
        ("pause", {"reason": "x"}),
        ("resume", {}),
        ("empty", {"expected": "1", "confirm": "yes"}),
    ):
        assert viewer_client.post(f"/queues/default/{action}/", data).status_code == 403
    assert OperatorAction.objects.count() == 0
    assert JobRecord.objects.get().status == JobRecord.Status.QUEUED


def test_actions_are_post_only(operator_client):
    for action in ("pause", "resume", "empty"):
        assert operator_client.get(f"/queues/default/{action}/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_queue_live_refresh_returns_the_live_part(operator_client):
    submit(1)
    response = operator_client.get(
        "/queues/default/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-live"
    )
    page = html(response)
    assert page.lstrip().startswith('<section id="queue-live"')
    assert "/queues/default/pause/" not in page  # the reason field is never reset
    assert "Yes, cancel all 1 waiting job in default" in page


# -- workers -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_workers_lists_live_and_dead_workers(operator_client):
    client = connect.connection()
    worker = ConsoleWorker(["default", "mail"], connection=client)
    worker.register_birth()
    worker.set_state("idle")
    worker.heartbeat()
    client.hset(
        live.WORKERS_SEEN,
        "gone.42.abc",
        json.dumps(
            {
                "hostname": "host-<b>",
                "pid": 42,
                "queues": ["reports:high", "reports", "reports:low"],
                "seen": time.time() - 300,
            }
        ),
    )
    client.hset(live.WORKERS_SEEN, "broken", "{not json")
    try:
        page = html(operator_client.get("/workers/"))
        fragment = html(
            operator_client.get(
                "/workers/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workers-live"
            )
        )
    finally:
        worker.register_death()

    assert worker.name[:30] in page
    assert (
        'href="/queues/default/">default</a>, <a class="mono" href="/queues/mail/"'
        in (page)
    )
    assert "default:high" not in page
    assert 'class="state state-succeeded">idle</span>' in page
    assert "gone.42.abc" in page and "host-&lt;b&gt;" in page
    assert 'class="state state-dead">dead</span>' in page
    assert "last seen" in page and re.search(r"5\s+minutes ago", page)
    assert "broken" not in page
    assert fragment.lstrip().startswith('<section id="workers-live"')
    assert "every 2s" in fragment


def test_workers_empty_state_says_how_to_start_one(viewer_client):
    page = html(viewer_client.get("/workers/"))
    assert "No workers are running" in page
    assert "rqworker default mail reports" in page


@pytest.mark.django_db(transaction=True)
def test_worker_rows_show_logical_queues_and_memory():
    client = connect.connection()
    worker = ConsoleWorker(["reports"], connection=client)
    worker.register_birth()
    worker.heartbeat()
    try:
        board = worker_selectors.worker_board()
    finally:
        worker.register_death()
    (row,) = board.alive
    assert row.queues == ["reports"]
    assert row.rss_kb > 0 and row.memory_mb == row.rss_kb / 1024
    assert row.heartbeat_age is not None and row.heartbeat_age < 60
    assert board.dead == []


# -- charts --------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def polyline_points(root: ET.Element) -> list[list[str]]:
    return [line.attrib["points"].split() for line in root.iter(f"{SVG}polyline")]


def test_line_chart_is_valid_svg_with_one_point_per_value():
    values = [float(n % 7) for n in range(60)]
    svg = charts.line_chart(
        [charts.Series("processed", values)],
        title="Processed per minute",
        unit="jobs/min",
        x_labels=("60 min ago", "30 min ago", "now"),
    )
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    (points,) = polyline_points(root)
    assert len(points) == 60
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "jobs/min" in texts and "60 min ago" in texts and "now" in texts
    assert "10" in texts  # the axis tops out at a round number above the peak 6
    ys = [float(p.split(",")[1]) for p in points]
    assert min(ys) >= charts.TOP and max(ys) <= charts.HEIGHT - charts.BOTTOM


def test_line_chart_escapes_labels():
    evil = '<script>alert("x")</script>'
    svg = charts.line_chart(
        [charts.Series(evil, [1.0, 2.0], "series-0")],
        title=evil,
        unit=evil,
        x_labels=(evil, "", "now"),
    )
    assert "<script>" not in svg
    root = parse(svg)  # still well-formed XML
    assert root.find(f"{SVG}title") is not None
    assert evil in (root.find(f"{SVG}title").text or "")


def test_line_chart_with_several_series_and_empty_data():
    svg = charts.line_chart(
        [
            charts.Series("default", [0.0] * 96),
            charts.Series("mail", [5.0] * 96, "series-1"),
            charts.Series("empty", []),
        ],
        title="Oldest wait",
        unit="seconds",
    )
    lines = polyline_points(parse(svg))
    assert [len(p) for p in lines] == [96, 96]
    flat = charts.line_chart([charts.Series("x", [0.0])], title="t", unit="u")
    assert len(polyline_points(parse(flat))[0]) == 1


def test_nice_ceiling_and_downsample():
    assert [charts.nice_ceiling(v) for v in (0, 0.4, 1.5, 7, 10, 11, 240)] == [
        1.0,
        1.0,
        2.0,
        10.0,
        10.0,
        20.0,
        500.0,
    ]
    day = [float(n) for n in range(1440)]
    assert len(charts.downsample(day, 96)) == 96
    assert charts.downsample(day, 96)[0] == pytest.approx(7.0)  # mean of 0..14
    assert charts.downsample(day, 96, max)[-1] == 1439.0
    assert charts.downsample([1.0, 2.0], 96) == [1.0, 2.0]


def test_duration_text():
    assert [charts.duration_text(s) for s in (None, 4.4, 60, 185, 3600, 7440)] == [
        "",
        "4 s",
        "1 min",
        "3 min 5 s",
        "1 h",
        "2 h 4 min",
    ]


@pytest.mark.django_db(transaction=True)
def test_chart_data_over_a_day_has_96_points_of_15_minutes():
    client = connect.connection()
    with client.pipeline() as pipe:
        stats.record_oldest_wait(pipe, {"default": 42.0, "mail": 7.0})
        stats.count_outcome(
            pipe, queue="default", task="demo.echo", outcome="processed", duration=1
        )
        pipe.execute()
    day = overview_selectors.chart_data("day")
    hour = overview_selectors.chart_data("hour")
    assert (day.window, day.minutes_per_point, len(day.processed)) == ("day", 15, 96)
    assert len(day.oldest_wait["default"]) == 96
    assert day.oldest_wait["default"][-1] == 42.0  # worst wait in the point
    assert (hour.window, len(hour.processed), hour.processed[-1]) == ("hour", 60, 1.0)
    assert set(hour.oldest_wait) == set(settings.JOB_QUEUES)
    rendered = charts.overview_charts(day)
    assert [c.unit for c in rendered] == ["jobs/min", "attempts/min", "seconds"]
    assert [s.label for s in rendered[2].series] == list(settings.JOB_QUEUES)
