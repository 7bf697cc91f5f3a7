"""The job page (live progress, actions) and the scheduled screen, over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.backend import progressstore, queueing
from jobs.models import JobEvent, JobRecord, OperatorAction
from jobs.selectors.job_page import job_page, relative
from tests.conftest import final

pytestmark = pytest.mark.django_db

Status = JobRecord.Status
XSS = "<script>alert(1)</script>"
HTMX = {"HTTP_HX_REQUEST": "true"}


def dead_job(run_until, **payload) -> JobRecord:
    job = services.job_submit(
        task="demo.fail",
        payload={"times": -1, **payload},
        retry={"max_attempts": 1},
    )
    run_until(final(job))
    job.refresh_from_db()
    assert job.status == Status.DEAD
    return job


def body(response) -> str:
    return response.content.decode()


# -- the page ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_page_shows_payload_result_and_attempts_with_traceback(
    viewer_client, run_until
):
    job = services.job_submit(task="demo.fail", payload={"times": 1})
    run_until(final(job))
    page = body(viewer_client.get(f"/jobs/{job.pk}/"))
    assert '<span class="state state-succeeded">Succeeded</span>' in page
    assert "&quot;times&quot;: 1" in page  # payload, pretty JSON
    assert "&quot;succeeded_on_attempt&quot;: 2" in page  # result
    assert "2</span> of <span" in page and 'of <span class="num">4' in page
    assert page.count('<tbody class="attempt">') == 2
    assert "state-failed" in page and "DemoFailure" in page
    assert "demo failure (attempt 1)" in page
    assert (
        "Traceback of attempt 1" in page and "Traceback (most recent call last)" in page
    )
    assert 'href="/queues/default/"' in page
    assert "from application code" in page
    assert "Earlier failure" in page
    assert "Final: this job will not change" in page and "hx-get" not in page


@pytest.mark.django_db(transaction=True)
def test_latest_failed_attempt_traceback_is_open(viewer_client, run_until):
    job = dead_job(run_until)
    page = body(viewer_client.get(f"/jobs/{job.pk}/"))
    assert "<details open>" in page
    assert "Last error" in page


@pytest.mark.django_db(transaction=True)
def test_timeline_names_the_operator_after_a_retry(operator_client, run_until):
    job = dead_job(run_until)
    response = operator_client.post(f"/jobs/{job.pk}/retry/")
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    action = OperatorAction.objects.get(action="retry")
    assert (action.actor_name, action.origin, action.count) == ("operators", "web", 1)
    assert action.target == f"job {job.pk}"
    event = JobEvent.objects.get(job=job, kind=JobEvent.Kind.RETRIED)
    assert event.actor is not None and event.actor.username == "operators"
    page = body(operator_client.get(response["Location"]))
    assert "Retried 1 job" in page  # the message
    assert "Retried by an operator" in page
    assert '<span class="actor">by operators</span>' in page
    run_until(final(job), timeout=30)  # the retried job runs (and fails) again
    assert JobRecord.objects.get(pk=job.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_dependencies_are_linked_both_ways_with_why_a_child_waits(
    viewer_client, run_until
):
    parent = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
    )
    child = services.job_submit(
        task="demo.echo", payload={"text": "after"}, depends_on=[parent.pk]
    )
    waiting = body(viewer_client.get(f"/jobs/{child.pk}/"))
    assert f'href="/jobs/{parent.pk}/"' in waiting
    assert "Runs after (1)" in waiting
    assert "waiting on 1 of 1 dependencies" in waiting

    run_until(final(parent))
    parent_page = body(viewer_client.get(f"/jobs/{parent.pk}/"))
    assert f'href="/jobs/{child.pk}/"' in parent_page
    assert "Runs before (1)" in parent_page
    assert "waits on this job, which is dead" in parent_page

    child_page = body(viewer_client.get(f"/jobs/{child.pk}/"))
    assert f"waiting on dependency {parent.pk}, which is dead" in child_page
    assert "blocks this job: it is dead" in child_page
    assert "state-dead" in child_page


@pytest.mark.django_db(transaction=True)
def test_unknown_job_is_a_404_page_with_a_way_back(viewer_client, operator_client):
    response = viewer_client.get("/jobs/no-such-job/")
    assert response.status_code == 404
    assert 'href="/jobs/"' in body(response)
    assert "Not found" in body(response)
    assert viewer_client.get("/jobs/no-such-job/live/").status_code == 404
    # A page left open on a job deleted meanwhile stops polling and says why.
    gone = viewer_client.get("/jobs/no-such-job/live/", **HTMX)
    assert gone.status_code == 286 and "no longer exists" in body(gone)
    for action in ("retry", "cancel", "delete", "run-now"):
        assert operator_client.post(f"/jobs/no-such-job/{action}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_user_data_is_escaped_in_payload_result_and_traceback(viewer_client, run_until):
    echoed = services.job_submit(task="demo.echo", payload={"text": XSS})
    failed = dead_job(run_until, message=XSS)
    run_until(final(echoed))
    for job in (echoed, failed):
        page = body(viewer_client.get(f"/jobs/{job.pk}/"))
        assert XSS not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = body(viewer_client.get(f"/jobs/{failed.pk}/"))
    assert "DemoFailure: &lt;script&gt;" in page  # the traceback's last line


@pytest.mark.django_db(transaction=True)
def test_redis_down_still_shows_the_page(viewer_client, redis_server):
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    progressstore.store_progress(job.pk, 10.0, "first")
    redis_server.stop()
    try:
        response = viewer_client.get(f"/jobs/{job.pk}/")
        assert response.status_code == 200
        assert "Progress is unavailable" in body(response)
    finally:
        redis_server.start()


# -- live --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_live_partial_polls_while_running_and_stops_when_final(viewer_client):
    job = services.job_submit(task="demo.sleep", payload={"seconds": 1})
    JobRecord.objects.filter(pk=job.pk).update(
        status=Status.STARTED, worker_name="w1", worker_pid=4242
    )
    response = viewer_client.get(f"/jobs/{job.pk}/live/", **HTMX)
    assert response.status_code == 200
    live = body(response)
    assert "hx-get" in live and "every 2s" in live
    assert "pid 4242" in live
    assert 'id="job-header" class="job-header" hx-swap-oob="true"' in live
    assert 'id="job-history" hx-swap-oob="true"' in live  # nothing seen yet

    JobRecord.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, result={})
    response = viewer_client.get(f"/jobs/{job.pk}/live/", **HTMX)
    assert response.status_code == 286
    assert "Final:" in body(response) and "hx-get" not in body(response)
    assert "state-succeeded" in body(response)  # the final state is swapped in


@pytest.mark.django_db(transaction=True)
def test_live_partial_resends_slow_parts_only_when_they_changed(viewer_client):
    job = services.job_submit(task="demo.sleep", payload={"seconds": 1})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.STARTED)
    page = job_page(job.pk)
    assert page is not None
    unchanged = body(
        viewer_client.get(f"/jobs/{job.pk}/live/?seen={page.signature}", **HTMX)
    )
    assert 'id="job-history"' not in unchanged
    assert 'id="job-header"' in unchanged and 'id="job-progress"' in unchanged
    JobRecord.objects.filter(pk=job.pk).update(attempts=1)
    changed = body(
        viewer_client.get(f"/jobs/{job.pk}/live/?seen={page.signature}", **HTMX)
    )
    assert 'id="job-history" hx-swap-oob="true"' in changed


@pytest.mark.django_db(transaction=True)
def test_live_partial_shows_progress_and_log_lines(viewer_client):
    job = services.job_submit(task="demo.progress", payload={"steps": 5})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.STARTED)
    progressstore.store_progress(job.pk, 40.0, "step 2 of 5")
    live = body(viewer_client.get(f"/jobs/{job.pk}/live/", **HTMX))
    assert '<progress max="100" value="40.0"' in live
    assert '<span class="num pct">40%</span>' in live
    assert "step 2 of 5" in live
    progressstore.store_progress(job.pk, 60.0, f"step 3 {XSS}")
    live = body(viewer_client.get(f"/jobs/{job.pk}/live/", **HTMX))
    assert "60%" in live and XSS not in live and "step 3 &lt;script&gt;" in live


@pytest.mark.django_db(transaction=True)
def test_running_job_without_progress_says_how_to_report_it(viewer_client):
    job = services.job_submit(task="demo.sleep", payload={"seconds": 1})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.STARTED)
    page = body(viewer_client.get(f"/jobs/{job.pk}/"))
    assert "no percentage reported" in page and "No log lines yet" in page


# -- actions -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_operator_cancels_a_delayed_job(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    page = body(operator_client.get(f"/jobs/{job.pk}/"))
    assert f'action="/jobs/{job.pk}/cancel/"' in page
    assert f'action="/jobs/{job.pk}/run-now/"' in page
    assert f'action="/jobs/{job.pk}/retry/"' not in page
    response = operator_client.post(f"/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    assert JobRecord.objects.get(pk=job.pk).status == Status.CANCELED
    action = OperatorAction.objects.get(action="cancel")
    assert (action.count, action.origin, action.actor_name) == (1, "web", "operators")
    assert "Canceled 1 job" in body(operator_client.get(response["Location"]))
    # Canceling again is skipped and said so.
    operator_client.post(f"/jobs/{job.pk}/cancel/")
    page = body(operator_client.get(f"/jobs/{job.pk}/"))
    assert "Canceled 0 jobs; 1 skipped: 1 already canceled" in page


@pytest.mark.django_db(transaction=True)
def test_operator_deletes_a_job_only_with_confirmation(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    page = body(operator_client.get(f"/jobs/{job.pk}/"))
    assert "Deletes <strong>1 job</strong>" in page
    assert 'name="confirm" value="yes" required' in page

    refused = operator_client.post(f"/jobs/{job.pk}/delete/")
    assert refused.status_code == 302 and refused["Location"] == f"/jobs/{job.pk}/"
    assert JobRecord.objects.filter(pk=job.pk).exists()
    assert not OperatorAction.objects.exists()
    assert "Nothing deleted" in body(operator_client.get(refused["Location"]))

    response = operator_client.post(f"/jobs/{job.pk}/delete/", {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert not JobRecord.objects.filter(pk=job.pk).exists()
    assert queueing.existing([job.pk]) == set()
    action = OperatorAction.objects.get(action="delete")
    assert (action.count, action.target, action.origin) == (1, f"job {job.pk}", "web")
    assert "Deleted 1 job" in body(operator_client.get("/jobs/"))
    assert operator_client.get(f"/jobs/{job.pk}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_running_job_cannot_be_deleted_but_can_be_canceled(
    operator_client, viewer_client
):
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    JobRecord.objects.filter(pk=job.pk).update(status=Status.STARTED)
    page = body(operator_client.get(f"/jobs/{job.pk}/"))
    assert "/delete/" not in page and f"/jobs/{job.pk}/cancel/" in page
    assert "/cancel/" not in body(viewer_client.get(f"/jobs/{job.pk}/"))
    operator_client.post(f"/jobs/{job.pk}/delete/", {"confirm": "yes"})
    assert JobRecord.objects.filter(pk=job.pk).exists()
    assert "1 skipped: 1 running" in body(operator_client.get(f"/jobs/{job.pk}/"))


@pytest.mark.django_db(transaction=True)
def test_operator_runs_a_delayed_job_now(operator_client, run_until):
    job = services.job_submit(task="demo.echo", payload={"text": "now"}, delay=3600)
    response = operator_client.post(f"/jobs/{job.pk}/run-now/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    action = OperatorAction.objects.get(action="run_now")
    assert (action.count, action.origin) == (1, "web")
    run_until(final(job), timeout=20)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED and job.result == {"text": "now"}
    page = body(operator_client.get(f"/jobs/{job.pk}/"))
    assert "moved to the front of its queue" in page
    assert "run now by an operator" in page


@pytest.mark.django_db(transaction=True)
def test_run_now_of_a_job_that_is_not_waiting_says_so(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"})
    operator_client.post(f"/jobs/{job.pk}/run-now/")
    assert "not moved" in body(operator_client.get(f"/jobs/{job.pk}/"))
    assert OperatorAction.objects.get(action="run_now").count == 0


@pytest.mark.django_db(transaction=True)
def test_htmx_action_returns_the_refreshed_parts_and_an_event(
    operator_client, run_until
):
    job = dead_job(run_until)
    response = operator_client.post(f"/jobs/{job.pk}/retry/", **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == '{"jobs-changed": {}}'
    html = body(response)
    assert 'id="job-poll"' in html and "hx-get" in html  # polling again
    assert 'id="job-messages" role="status" hx-swap-oob="true"' in html
    assert "Retried 1 job" in html
    assert (
        'id="job-actions" class="job-actions" aria-label="Actions" hx-swap-oob' in html
    )
    # The message was shown in the fragment, so the next page does not repeat it.
    assert "Retried 1 job" not in body(operator_client.get(f"/jobs/{job.pk}/"))


@pytest.mark.django_db(transaction=True)
def test_htmx_delete_redirects_the_browser_to_the_list(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=60)
    response = operator_client.post(
        f"/jobs/{job.pk}/delete/", {"confirm": "yes"}, **HTMX
    )
    assert response["HX-Redirect"] == "/jobs/"


@pytest.mark.django_db(transaction=True)
def test_viewer_sees_no_buttons_and_every_action_is_refused(viewer_client, run_until):
    dead = dead_job(run_until)
    delayed = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    for job in (dead, delayed):
        page = body(viewer_client.get(f"/jobs/{job.pk}/"))
        assert "<button" not in page.split("<main>")[1]
        for action in ("retry", "cancel", "delete", "run-now"):
            assert f"/{action}/" not in page
            response = viewer_client.post(
                f"/jobs/{job.pk}/{action}/", {"confirm": "yes"}
            )
            assert response.status_code == 403
    assert JobRecord.objects.get(pk=dead.pk).status == Status.DEAD
    assert JobRecord.objects.get(pk=delayed.pk).status == Status.SCHEDULED
    assert not OperatorAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_actions_need_post(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    for action in ("retry", "cancel", "delete", "run-now"):
        assert operator_client.get(f"/jobs/{job.pk}/{action}/").status_code == 405
    assert JobRecord.objects.filter(pk=job.pk).exists()


# -- scheduled ----------------------------------------------------------------


def test_scheduled_empty_state(viewer_client):
    page = body(viewer_client.get("/scheduled/"))
    assert "Nothing scheduled. Jobs submitted with a delay or a run-at time" in page
    assert "Cron and interval schedules" in page


@pytest.mark.django_db(transaction=True)
def test_scheduled_lists_delayed_and_retrying_jobs_soonest_first(
    operator_client, viewer_client, run_until
):
    retrying = services.job_submit(
        task="demo.fail",
        payload={"times": 1},
        retry={"base": 1800, "cap": 1800, "jitter": 0},
    )
    run_until(lambda: JobRecord.objects.get(pk=retrying.pk).status == "retrying")
    later = services.job_submit(task="demo.echo", payload={"text": "b"}, delay=3600)
    soon = services.job_submit(
        task="demo.sleep", payload={"seconds": 1}, queue="mail", delay=180
    )
    services.job_submit(task="demo.echo", payload={"text": "now"})  # not scheduled
    page = body(operator_client.get("/scheduled/"))
    assert page.index(soon.pk[:11]) < page.index(retrying.pk[:11])
    assert page.index(retrying.pk[:11]) < page.index(later.pk[:11])
    assert "in 3 min" in page or "in 2 min" in page
    assert "in 30 min" in page or "in 29 min" in page
    assert "in 1 h" in page or "in 59 min" in page
    assert 'href="/queues/mail/"' in page
    assert page.count(">Run now</button>") == 3
    assert 'name="next" value="/scheduled/"' in page
    assert "state-retrying" in page and "1 of 4" in page
    assert "Run now" not in body(viewer_client.get("/scheduled/"))

    response = operator_client.post(
        f"/jobs/{soon.pk}/run-now/", {"next": "/scheduled/"}
    )
    assert response.status_code == 302 and response["Location"] == "/scheduled/"
    page = body(operator_client.get("/scheduled/"))
    assert "moved to the front of its queue" in page
    assert f'href="/jobs/{soon.pk}/"' not in page
    assert f'href="/jobs/{later.pk}/"' in page


@pytest.mark.django_db(transaction=True)
def test_run_now_ignores_an_unsafe_next(operator_client):
    job = services.job_submit(task="demo.echo", payload={"text": "x"}, delay=600)
    response = operator_client.post(
        f"/jobs/{job.pk}/run-now/", {"next": "https://evil.example/"}
    )
    assert response["Location"] == f"/jobs/{job.pk}/"


@pytest.mark.django_db(transaction=True)
def test_scheduled_partial_for_polling_and_redis_down(viewer_client, redis_server):
    services.job_submit(task="demo.echo", payload={"text": "b"}, delay=600)
    fragment = body(viewer_client.get("/scheduled/", **HTMX))
    assert fragment.lstrip().startswith('<section id="scheduled-jobs"')
    assert "demo.echo" in fragment and "<html" not in fragment
    redis_server.stop()
    try:
        response = viewer_client.get("/scheduled/")
        assert response.status_code == 200
        assert "Redis cannot be read right now" in body(response)
    finally:
        redis_server.start()


def test_relative_times_read_naturally_both_ways():
    now = timezone.now()
    assert relative(now + timedelta(minutes=3, seconds=5), now) == "in 3 min"
    assert relative(now - timedelta(seconds=12), now) == "12 s ago"
    assert relative(now + timedelta(hours=2, minutes=5), now) == "in 2 h 5 min"
    assert relative(now - timedelta(days=3), now) == "3 days ago"
    assert relative(now, now) == "now"
