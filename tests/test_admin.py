"""The Django admin: actions through the services, read-only history."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs import services
from jobs.models import ApiToken, JobRecord, OperatorAction, QueueState
from jobs.tokens import token_user
from tests.conftest import final
from tests.factories import user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def action(client: Client, url: str, name: str, ids: list[str], **extra: str):
    return client.post(
        url, {"action": name, "_selected_action": ids, **extra}, follow=True
    )


@pytest.mark.django_db(transaction=True)
def test_job_actions_go_through_the_services(admin_client, run_until):
    dead = services.job_submit(
        task="demo.fail", payload={"times": 1}, retry={"max_attempts": 1}
    )
    run_until(final(dead))
    waiting = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    url = "/admin/jobs/jobrecord/"
    page = action(admin_client, url, "retry", [dead.pk, waiting.pk], **YES(2))
    assert b"Retried 1 job; 1 skipped: 1 already scheduled" in page.content
    page = action(admin_client, url, "cancel", [waiting.pk], **YES(1))
    assert b"Canceled 1 job" in page.content
    confirm = action(admin_client, url, "delete_jobs", [waiting.pk])
    assert b"Delete <strong>1 job</strong>" in confirm.content
    assert JobRecord.objects.filter(pk=waiting.pk).exists()
    action(admin_client, url, "delete_jobs", [waiting.pk], **YES(1))
    assert not JobRecord.objects.filter(pk=waiting.pk).exists()
    origins = set(OperatorAction.objects.values_list("action", "origin"))
    assert {("retry", "admin"), ("cancel", "admin"), ("delete", "admin")} <= origins


def YES(count: int) -> dict[str, str]:
    return {"confirm": "yes", "expected": str(count)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "verb"),
    [("retry", "Retry"), ("cancel", "Cancel"), ("delete_jobs", "Delete")],
)
def test_every_job_action_states_the_count_and_asks_first(admin_client, name, verb):
    ids = [
        services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600).pk
        for _ in range(3)
    ]
    before = dict(JobRecord.objects.values_list("pk", "status"))
    asked = action(admin_client, "/admin/jobs/jobrecord/", name, ids[:2])
    body = asked.content.decode()
    assert f"{verb} <strong>2 jobs</strong>" in body
    assert 'name="expected" value="2"' in body and f'value="{name}"' in body
    assert dict(JobRecord.objects.values_list("pk", "status")) == before
    assert not OperatorAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_all_matching_selection_asks_again_when_more_jobs_match(admin_client):
    for _ in range(3):
        services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    url = "/admin/jobs/jobrecord/?task__exact=demo.echo"
    some = JobRecord.objects.values_list("pk", flat=True).first()
    asked = action(admin_client, url, "cancel", [some], select_across="1")
    assert b"Cancel <strong>3 jobs</strong>" in asked.content
    again = action(admin_client, url, "cancel", [some], select_across="1", **YES(2))
    assert b"3 jobs match now, not the 2 you confirmed" in again.content
    assert not OperatorAction.objects.exists()
    done = action(admin_client, url, "cancel", [some], select_across="1", **YES(3))
    assert b"Canceled 3 jobs" in done.content


@pytest.mark.django_db(transaction=True)
def test_change_page_shows_attempts_and_events_read_only(admin_client, run_until):
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    run_until(final(job))
    page = admin_client.get(f"/admin/jobs/jobrecord/{job.pk}/change/")
    assert page.status_code == 200
    assert b"succeeded" in page.content and b"Attempts" in page.content
    assert admin_client.get("/admin/jobs/jobrecord/add/").status_code == 403
    assert admin_client.get("/admin/jobs/operatoraction/add/").status_code == 403
    search = admin_client.get(f"/admin/jobs/jobrecord/?q={job.pk}")
    assert job.pk.encode() in search.content


@pytest.mark.django_db(transaction=True)
def test_queue_pause_asks_for_a_reason(admin_client):
    url = "/admin/jobs/queuestate/"
    assert admin_client.get(url).status_code == 200  # lists every configured queue
    asked = action(admin_client, url, "pause", ["mail"])
    assert b"reason" in asked.content and not QueueState.objects.get(name="mail").paused
    action(admin_client, url, "pause", ["mail"], reason="deploy")
    state = QueueState.objects.get(name="mail")
    assert state.paused and state.reason == "deploy"
    action(admin_client, url, "resume", ["mail"], reason="done")
    assert not QueueState.objects.get(name="mail").paused
    assert set(OperatorAction.objects.values_list("action", "origin")) == {
        ("pause", "admin"),
        ("resume", "admin"),
    }


@pytest.mark.django_db(transaction=True)
def test_viewer_staff_cannot_run_actions():
    viewer = user_in("Viewers")
    viewer.is_staff = True
    viewer.save()
    client = Client()
    client.force_login(viewer)
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    page = client.get("/admin/jobs/jobrecord/")
    assert page.status_code == 200 and b"Cancel selected jobs" not in page.content
    action(client, "/admin/jobs/jobrecord/", "cancel", [job.pk])
    assert JobRecord.objects.get(pk=job.pk).status == "scheduled"


def test_api_token_is_shown_once_and_stored_hashed(admin_client):
    user = user_in("Operators")
    page = admin_client.post(
        "/admin/jobs/apitoken/add/", {"user": user.pk, "name": "ci"}, follow=True
    )
    text = page.content.decode()
    secret = text.split("Token for operators: ")[1].split(" ")[0]
    token = ApiToken.objects.get()
    assert secret.startswith("jc_") and token.key_hash != secret
    assert token_user(secret) == user
    action(admin_client, "/admin/jobs/apitoken/", "revoke", [str(token.pk)])
    assert token_user(secret) is None


def test_admin_and_console_link_to_each_other(admin_client):
    assert b'href="/"' in admin_client.get("/admin/").content
    assert b'href="/admin/"' in admin_client.get("/jobs/").content


@pytest.mark.django_db(transaction=True)
def test_schedules_in_the_admin(admin_client):
    from jobs.backend import scheduling
    from jobs.models import Schedule

    bad = admin_client.post(
        "/admin/jobs/schedule/add/",
        {
            "name": "bad",
            "task": "demo.echo",
            "payload": '{"text": "x"}',
            "cron": "nope",
            "timezone": "UTC",
            "enabled": "on",
        },
    )
    assert b"not a valid cron expression" in bad.content
    assert Schedule.objects.count() == 0
    admin_client.post(
        "/admin/jobs/schedule/add/",
        {
            "name": "tick",
            "task": "demo.echo",
            "payload": '{"text": "x"}',
            "interval_seconds": "30",
            "timezone": "UTC",
            "enabled": "on",
        },
    )
    schedule = Schedule.objects.get()
    assert list(scheduling.entries()) == [schedule.pk]
    action(admin_client, "/admin/jobs/schedule/", "disable", [str(schedule.pk)])
    assert scheduling.entries() == {}
    page = action(admin_client, "/admin/jobs/schedule/", "run_now", [str(schedule.pk)])
    assert b"Submitted 1 job" in page.content
    assert JobRecord.objects.get().schedule_id == schedule.pk
