"""Metrics, alerts and their notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth.models import User
from django.test import Client

from console.localredis import free_port
from jobs import notify, services
from jobs.backend import connect
from jobs.backend.workers import ConsoleWorker
from jobs.defaults import ensure_default_alert_rules
from jobs.models import Alert, AlertRule
from jobs.processes import alerts
from tests.conftest import final, wait_for
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def default_rules() -> None:
    # Transactional tests flush the tables, migration-made rows included.
    ensure_default_alert_rules(AlertRule)


def scrape(token: str) -> str:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_metrics_need_the_token_or_a_staff_session(settings):
    settings.METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert "jobs_queue_depth" in scrape("s3cret")
    staff = Client()
    staff.force_login(User.objects.create_user("ops", is_staff=True))
    assert staff.get("/metrics").status_code == 200


def test_metrics_show_a_known_scenario_from_two_worker_processes(
    settings, workers, monitor
):
    settings.METRICS_TOKEN = "t"
    ok = [
        services.job_submit(task="demo.echo", payload={"text": str(i)})
        for i in range(10)
    ]
    dead = [
        services.job_submit(
            task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
        )
        for _ in range(3)
    ]
    retried = [
        services.job_submit(task="demo.fail", payload={"times": 1}, retry={"base": 0.1})
        for _ in range(2)
    ]
    workers(2)
    wait_for(final(*ok, *dead, *retried), timeout=60)
    text = scrape("t")
    assert 'jobs_processed_total{queue="default",task="demo.echo"} 10.0' in text
    assert 'jobs_dead_total{queue="default",task="demo.fail"} 3.0' in text
    assert 'jobs_retried_total{queue="default",task="demo.fail"} 2.0' in text
    assert 'jobs_processed_total{queue="default",task="demo.fail"} 2.0' in text
    assert 'jobs_queue_depth{queue="default",state="dead"} 3.0' in text
    assert 'jobs_duration_seconds_count{task="demo.echo"} 10.0' in text
    assert 'jobs_workers{state="idle"}' in text
    assert "django_http_requests_total_by_method_total" in text


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        length = int(self.headers["Content-Length"])
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(settings):
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    yield Receiver.received
    server.shutdown()


def test_no_live_worker_alert_opens_notifies_once_and_resolves(webhook):
    AlertRule.objects.exclude(kind=AlertRule.Kind.NO_WORKER).update(enabled=False)
    services.job_submit(task="demo.echo", payload={"text": "waiting"})
    opened, _ = alerts.evaluate()
    assert [a.subject for a in opened] == ["default"]
    assert "no live worker" in opened[0].summary
    alerts.evaluate()  # still open: no second notification
    notify.flush()
    assert [r["event"] for r in webhook] == ["opened"]
    assert webhook[0]["subject"] == "default" and webhook[0]["detail"]["queued"] == 1
    viewer = Client()
    viewer.force_login(user_in("Viewers", "v"))
    assert b"no live worker" in viewer.get("/jobs/").content  # the banner
    worker = ConsoleWorker(["default"], connection=connect.connection())
    worker.register_birth()
    try:
        _, resolved = alerts.evaluate()
    finally:
        worker.register_death()
    assert [a.subject for a in resolved] == ["default"]
    assert Alert.objects.get().resolved_at is not None
    notify.flush()
    assert [r["event"] for r in webhook] == ["opened", "resolved"]


def test_failing_webhook_never_blocks_the_monitor(settings, monitor):
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/nobody-listens"
    AlertRule.objects.exclude(kind=AlertRule.Kind.NO_WORKER).update(enabled=False)
    services.job_submit(task="demo.echo", payload={"text": "waiting"})
    wait_for(
        lambda: Alert.objects.filter(resolved_at__isnull=True).exists(), timeout=20
    )
    job = services.job_submit(task="demo.echo", payload={"text": "still recorded"})
    from tests.conftest import work

    work()
    wait_for(lambda: final(job)(), timeout=20)  # the monitor kept recording


def test_failure_spike_and_dead_growth_carry_diagnostics(run_until):
    AlertRule.objects.exclude(
        kind__in=[AlertRule.Kind.FAILURE_RATE, AlertRule.Kind.DEAD_GROWTH]
    ).update(enabled=False)
    AlertRule.objects.filter(kind=AlertRule.Kind.DEAD_GROWTH).update(threshold=5)
    jobs = [
        services.job_submit(
            task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
        )
        for _ in range(20)  # the rule's minimum volume
    ]
    run_until(final(*jobs))
    opened, _ = alerts.evaluate()
    by_kind = {a.rule.kind: a for a in opened}
    assert set(by_kind) == {"failure_rate", "dead_growth"}
    assert by_kind["failure_rate"].detail["rate_percent"] == 100.0
    assert by_kind["dead_growth"].detail["top_tasks"] == [
        {"task": "demo.fail", "count": 20}
    ]
    assert len(by_kind["dead_growth"].detail["example_jobs"]) == 5


def test_prometheus_rules_file_covers_every_built_in_rule():
    import yaml

    from jobs.defaults import DEFAULT_ALERT_RULES
    from tests.conftest import BASE_DIR

    rules = yaml.safe_load((BASE_DIR / "deploy/prometheus/alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert len(names) >= len(DEFAULT_ALERT_RULES)
    for metric in (
        "jobs_queue_depth",
        "jobs_queue_oldest_wait_seconds",
        "jobs_failed_total",
        "jobs_workers",
        "jobs_dead_total",
        "jobs_scheduler_last_seen_seconds",
    ):
        assert metric in exprs


def test_alerts_screen_lists_open_and_resolved_alerts():
    rule = AlertRule.objects.get(kind=AlertRule.Kind.NO_WORKER)
    from django.utils import timezone

    Alert.objects.create(
        rule=rule,
        subject="mail",
        opened_at=timezone.now(),
        summary="mail: <b>3</b> jobs waiting",
        detail={"queued": 3},
    )
    Alert.objects.create(
        rule=rule,
        subject="default",
        opened_at=timezone.now(),
        resolved_at=timezone.now(),
        summary="default: old trouble",
    )
    client = Client()
    client.force_login(user_in("Viewers"))
    page = client.get("/alerts/").content.decode()
    assert "mail: &lt;b&gt;3&lt;/b&gt; jobs waiting" in page
    assert "default: old trouble" in page and "No live worker" in page
