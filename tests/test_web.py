"""The console's pages over HTTP: roles, CSRF, escaping, the submission form."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs import services
from jobs.models import JobRecord
from tests.factories import user_in

pytestmark = pytest.mark.django_db


def test_operator_submits_a_job_from_the_form(operator_client):
    page = operator_client.get("/submit/")
    assert page.status_code == 200
    assert b"demo.echo" in page.content
    response = operator_client.post(
        "/submit/",
        {
            "task": "demo.echo",
            "payload": '{"text": "from the form"}',
            "priority": "high",
            "queue": "mail",
        },
    )
    job = JobRecord.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.task, job.queue, job.priority, job.origin) == (
        "demo.echo",
        "mail",
        "high",
        "web",
    )
    assert job.submitted_by.username == "operators"
    detail = operator_client.get(response["Location"])
    assert b"from the form" in detail.content


def test_form_shows_schema_errors_on_the_payload_field(operator_client):
    response = operator_client.post(
        "/submit/", {"task": "demo.echo", "payload": '{"txt": 1}'}
    )
    assert response.status_code == 400
    assert b"text: Field required" in response.content
    response = operator_client.post(
        "/submit/", {"task": "demo.echo", "payload": "{oops"}
    )
    assert b"not valid JSON" in response.content
    assert JobRecord.objects.count() == 0


def test_viewer_cannot_submit_and_sees_no_submit_link(viewer_client):
    assert viewer_client.get("/submit/").status_code == 403
    response = viewer_client.post(
        "/submit/", {"task": "demo.echo", "payload": '{"text": "x"}'}
    )
    assert response.status_code == 403
    assert JobRecord.objects.count() == 0
    assert b'href="/submit/"' not in viewer_client.get("/jobs/").content


def test_post_without_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_in("Operators"))
    response = client.post(
        "/submit/", {"task": "demo.echo", "payload": '{"text": "x"}'}
    )
    assert response.status_code == 403
    assert JobRecord.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_payloads_are_escaped(viewer_client):
    job = services.job_submit(
        task="demo.echo", payload={"text": "<script>alert(1)</script>"}
    )
    page = viewer_client.get(f"/jobs/{job.pk}/")
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content


def test_unknown_job_is_a_404(viewer_client):
    assert viewer_client.get("/jobs/does-not-exist/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_job_list_filters_and_reports_malformed_filters(viewer_client):
    services.job_submit(task="demo.echo", payload={"text": "needle"})
    services.job_submit(task="demo.sleep", payload={"seconds": 1})
    page = viewer_client.get("/jobs/?payload=needle&status=bogus&since=yesterday")
    assert page.status_code == 200
    body = page.content.decode()
    rows = body.split("<tbody>", 1)[1]
    assert "demo.echo" in rows and "demo.sleep" not in rows
    assert "unknown status" in body and "is not a date" in body


@pytest.mark.django_db(transaction=True)
def test_console_says_redis_is_unavailable_instead_of_failing(
    operator_client, redis_server
):
    assert b"Redis OK" in operator_client.get("/jobs/").content
    redis_server.stop()
    try:
        page = operator_client.get("/jobs/")
        assert page.status_code == 200
        assert b"Redis unavailable" in page.content
        submitted = operator_client.post(
            "/submit/", {"task": "demo.echo", "payload": '{"text": "outbox"}'}
        )
        assert submitted.status_code == 302
        assert JobRecord.objects.get().status == JobRecord.Status.PENDING
    finally:
        redis_server.start()
