"""The Jobs list (search, bulk actions), the Failures screen and the Operator log."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from jobs import services
from jobs.models import Attempt, JobRecord, OperatorAction, Origin
from jobs.processes.recorder_handlers import fingerprint
from jobs.selectors import failures, history
from jobs.selectors.history import JobFilter
from tests.conftest import final

pytestmark = pytest.mark.django_db
Status = JobRecord.Status
_ids = itertools.count(1)


def make(**fields: Any) -> JobRecord:
    """A history row written directly: enough for the selection logic."""
    fields.setdefault("task", "demo.echo")
    fields.setdefault("queue", "default")
    fields.setdefault("payload", {"text": "x"})
    fields.setdefault("submitted_at", timezone.now())
    return JobRecord.objects.create(id=f"job-{next(_ids):05d}", **fields)


def make_dead(task: str = "demo.echo", message: str = "boom 1", **fields: Any):
    record = make(
        task=task,
        status=Status.DEAD,
        attempts=1,
        error_type="DemoFailure",
        last_error=message,
        error_fingerprint=fingerprint(task, "DemoFailure", message),
        finished_at=timezone.now(),
        **fields,
    )
    Attempt.objects.create(
        job=record,
        number=1,
        outcome=Attempt.Outcome.FAILED,
        exc_type="DemoFailure",
        exc_message=message,
        traceback=f"Traceback (most recent call last):\nDemoFailure: {message}",
    )
    return record


def listed(client: Client, **query: str) -> set[str]:
    page = client.get("/jobs/?" + urlencode(query))
    assert page.status_code == 200
    return {job.pk for job in page.context["page"]}


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- search ------------------------------------------------------------------


def test_each_filter_field_narrows_the_list(viewer_client, operator_user):
    now = timezone.now()
    echo = make(task="demo.echo", payload={"text": "needle in here"})
    sleep = make(task="demo.sleep", queue="mail", payload={"seconds": 1})
    dead = make_dead(task="demo.fail", message="database exploded")
    old = make(submitted_at=now - timedelta(days=10))
    mine = make(submitted_by=operator_user)
    ran = make(worker_name="host.42.ab12", status=Status.STARTED)
    make(worker_name="host.42.ab1", status=Status.STARTED)  # a prefix is not it

    assert listed(viewer_client, status="dead") == {dead.pk}
    assert listed(viewer_client, queue="mail") == {sleep.pk}
    assert listed(viewer_client, task="demo.sleep") == {sleep.pk}
    assert listed(viewer_client, payload="needle") == {echo.pk}
    assert listed(viewer_client, error="exploded") == {dead.pk}
    assert listed(viewer_client, submitted_by=operator_user.username) == {mine.pk}
    assert listed(viewer_client, fingerprint=dead.error_fingerprint) == {dead.pk}
    day = (now - timedelta(days=5)).strftime("%Y-%m-%d")
    assert listed(viewer_client, until=day) == {old.pk}
    assert old.pk not in listed(viewer_client, since=day)
    assert len(listed(viewer_client, since=day)) == 6
    assert listed(viewer_client, worker="host.42.ab12") == {ran.pk}
    page = viewer_client.get("/jobs/?worker=host.42.ab12").content.decode()
    assert 'id="f-worker" name="worker" value="host.42.ab12"' in page
    # Fields combine.
    assert listed(viewer_client, task="demo.echo", payload="needle") == {echo.pk}
    assert listed(viewer_client, task="demo.echo", status="dead") == set()


def test_form_has_a_label_for_every_field_and_a_slash_shortcut(viewer_client):
    body = viewer_client.get("/jobs/").content.decode()
    for name in ("task", "status", "queue", "payload", "error", "since", "until", "by"):
        assert f'<label for="f-{name}"' in body
        assert f'id="f-{name}"' in body
    assert 'aria-keyshortcuts="/"' in body
    assert 'event.key !== "/"' in body


def test_malformed_filters_are_ignored_with_a_message(viewer_client):
    make(task="demo.echo")
    page = viewer_client.get("/jobs/?status=bogus&since=yesterday&page=zzz")
    assert page.status_code == 200
    notes = " ".join(messages_of(page))
    assert "unknown status" in notes and "is not a date" in notes
    assert len(page.context["page"].rows) == 1


def test_pagination_keeps_the_filters(viewer_client):
    for _ in range(60):
        make(task="demo.sleep", payload={"seconds": 1})
    make(task="demo.echo")
    first = viewer_client.get("/jobs/?task=demo.sleep")
    body = first.content.decode()
    assert len(first.context["page"].rows) == 50
    assert "Page 1 of 2" in body
    assert 'href="?task=demo.sleep&amp;page=2"' in body
    second = viewer_client.get("/jobs/?task=demo.sleep&page=2")
    assert len(second.context["page"].rows) == 10
    assert {j.task for j in second.context["page"]} == {"demo.sleep"}
    assert 'href="?task=demo.sleep&amp;page=1"' in second.content.decode()
    # A page past the end shows the last page, not an error.
    assert (
        viewer_client.get("/jobs/?task=demo.sleep&page=99").context["page"].number == 2
    )


def test_counts_are_exact_when_indexed_or_small_and_capped_otherwise():
    for _ in range(8):
        make(task="demo.echo", payload={"text": "hay"})
    indexed = history.job_count(JobFilter(task="demo.echo"), limit=5)
    assert (indexed.value, indexed.exact, indexed.label) == (8, True, "8")
    text = history.job_count(JobFilter(payload="hay"), limit=5)
    assert (text.exact, text.label) == (False, "more than 5")
    small = history.job_count(JobFilter(payload="hay"), limit=50)
    assert (small.value, small.exact) == (8, True)
    # An inexact count still pages, by probing one row further.
    page = history.job_page(JobFilter(payload="hay"), "1", count=text, per_page=5)
    assert (len(page), page.has_next, page.num_pages) == (5, True, None)


def test_list_shows_columns_and_truncates_the_error(viewer_client):
    long_error = "x" * 300
    dead = make_dead(message=long_error, priority="high")
    body = viewer_client.get("/jobs/").content.decode()
    assert f'href="/jobs/{dead.pk}/"' in body
    assert "High" in body
    assert '<span class="state state-dead">Dead</span>' in body
    assert long_error not in body and "x" * 70 in body
    assert "1 of 1<" in body


@pytest.mark.django_db(transaction=True)
def test_job_ids_are_a_capped_newest_first_snapshot():
    now = timezone.now()
    rows = [make_dead(submitted_at=now - timedelta(minutes=n)) for n in range(7)]
    seen = []
    for job_id in history.job_ids(JobFilter(status="dead"), limit=100):
        seen.append(job_id)
        JobRecord.objects.filter(pk=job_id).update(status=Status.PENDING)
    assert seen == [r.pk for r in rows]
    newest = history.job_ids(JobFilter(), limit=3)
    assert list(newest) == [r.pk for r in rows[:3]]


# -- bulk actions -------------------------------------------------------------


def bulk(client: Client, action: str, **query: str) -> Any:
    """A bulk action as an operator does it: ask, read the count, confirm."""
    query.pop("confirm", None)
    asked = client.post("/jobs/bulk/", {"action": action, **query}, follow=True)
    expected = re.search(r'name="expected" value="(\d+)"', asked.content.decode())
    if expected is None:  # nothing to confirm: refused or nothing matches
        return asked
    data = {"action": action, **query, "confirm": "yes", "expected": expected[1]}
    return client.post("/jobs/bulk/", data, follow=True)


@pytest.mark.django_db(transaction=True)
def test_bulk_retry_retries_exactly_the_filtered_dead_jobs(operator_client, run_until):
    job = services.job_submit(
        task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
    )
    run_until(final(job))
    assert JobRecord.objects.get(pk=job.pk).status == Status.DEAD
    other_dead = make_dead(task="demo.echo")
    succeeded = make(task="demo.fail", status=Status.SUCCEEDED, payload={"times": 0})

    response = bulk(operator_client, "retry", status="dead", task="demo.fail")

    assert response.redirect_chain[-1][0] == "/jobs/?status=dead&task=demo.fail"
    assert "Retried 1 job" in messages_of(response)
    assert JobRecord.objects.get(pk=other_dead.pk).status == Status.DEAD
    assert JobRecord.objects.get(pk=succeeded.pk).status == Status.SUCCEEDED
    entry = OperatorAction.objects.get()
    assert (entry.action, entry.count, entry.origin) == ("retry", 1, Origin.WEB)
    assert entry.actor_name == "operators"
    assert entry.target == "jobs matching status=dead task=demo.fail"
    # It really runs again: one more attempt, dead again.
    run_until(lambda: JobRecord.objects.get(pk=job.pk).attempts == 2)
    run_until(final(job))
    assert JobRecord.objects.get(pk=job.pk).status == Status.DEAD


@pytest.mark.django_db(transaction=True)
def test_bulk_applies_to_every_match_not_just_the_page(operator_client):
    for _ in range(60):
        make_dead(task="demo.echo")
    make_dead(task="demo.sleep")
    response = bulk(operator_client, "retry", task="demo.echo", status="dead")
    assert "Retried 60 jobs" in messages_of(response)
    assert JobRecord.objects.filter(status=Status.DEAD).count() == 1


@pytest.mark.django_db(transaction=True)
def test_bulk_cancel_reports_what_it_skipped(operator_client):
    waiting = services.job_submit(task="demo.echo", payload={"text": "later"})
    make(task="demo.echo", status=Status.SUCCEEDED)
    response = bulk(operator_client, "cancel", task="demo.echo")
    assert "Canceled 1 job; 1 skipped: 1 already succeeded" in messages_of(response)
    assert JobRecord.objects.get(pk=waiting.pk).status == Status.CANCELED


@pytest.mark.django_db(transaction=True)
def test_bulk_delete_asks_first_stating_the_count(operator_client):
    for _ in range(3):
        make_dead(task="demo.echo")
    keep = make(task="demo.sleep", payload={"seconds": 1})

    asked = operator_client.post(
        "/jobs/bulk/", {"action": "delete", "task": "demo.echo"}
    )
    assert asked.status_code == 200
    body = asked.content.decode()
    assert "Delete <strong>3 jobs</strong>" in body
    assert 'name="confirm" value="yes"' in body
    assert JobRecord.objects.count() == 4
    assert not OperatorAction.objects.exists()

    done = bulk(operator_client, "delete", task="demo.echo", confirm="yes")
    assert "Deleted 3 jobs" in messages_of(done)
    assert list(JobRecord.objects.values_list("pk", flat=True)) == [keep.pk]


@pytest.mark.django_db(transaction=True)
def test_bulk_on_an_empty_selection_does_nothing(operator_client):
    make_dead(task="demo.echo")
    for action in ("retry", "cancel", "delete"):
        response = bulk(operator_client, action, task="no.such.task")
        assert "No jobs match; nothing done" in messages_of(response)
    assert not OperatorAction.objects.filter(count__gt=0).exists()
    assert JobRecord.objects.get().status == Status.DEAD


@pytest.mark.django_db(transaction=True)
def test_bulk_refuses_a_malformed_filter_or_action(operator_client):
    make_dead(task="demo.echo")
    bad_date = bulk(operator_client, "delete", since="not-a-date", confirm="yes")
    assert any("nothing done" in m for m in messages_of(bad_date))
    bad_action = bulk(operator_client, "explode")
    assert "unknown action 'explode'; nothing done" in messages_of(bad_action)
    assert JobRecord.objects.count() == 1
    assert not OperatorAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_form_states_the_count_and_the_cap(operator_client):
    for _ in range(3):
        make_dead(task="demo.echo")
    body = operator_client.get("/jobs/?status=dead").content.decode()
    assert "Bulk actions apply to the <strong>3 jobs</strong>" in body
    assert "(at most 100,000)" in body
    assert '<input type="hidden" name="status" value="dead">' in body


# -- roles --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_viewer_sees_no_buttons_and_every_post_is_refused(viewer_client):
    dead = make_dead(task="demo.echo")
    jobs_page = viewer_client.get("/jobs/").content.decode()
    failures_page = viewer_client.get("/failures/").content.decode()
    assert 'action="/jobs/bulk/"' not in jobs_page
    assert "Retry all" not in failures_page and "Discard all" not in failures_page
    assert "demo.echo" in failures_page
    key = dead.error_fingerprint
    for url, data in [
        ("/jobs/bulk/", {"action": "retry"}),
        ("/jobs/bulk/", {"action": "delete", "confirm": "yes"}),
        (f"/failures/{key}/retry/", {"task": "demo.echo"}),
        (f"/failures/{key}/discard/", {"task": "demo.echo", "confirm": "yes"}),
    ]:
        assert viewer_client.post(url, data).status_code == 403
    assert JobRecord.objects.get().status == Status.DEAD
    assert not OperatorAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_actions_refuse_get(operator_client):
    assert operator_client.get("/jobs/bulk/?action=delete").status_code == 405
    assert operator_client.get("/failures/abc/retry/").status_code == 405


# -- failures -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_messages_differing_only_by_numbers_are_one_group(viewer_client, run_until):
    jobs = [
        services.job_submit(
            task="demo.fail",
            payload={"times": -1, "message": message},
            retry={"max_attempts": 1},
        )
        for message in ("user 12 not found", "user 98765 not found", "disk full")
    ]
    run_until(final(*jobs))

    board = failures.failure_board()
    counts = sorted((g.dead, g.message.split(" (")[0]) for g in board.groups)
    assert len(board.groups) == 2
    assert counts[0] == (1, "disk full")
    assert counts[1][0] == 2 and counts[1][1].startswith("user ")
    page = viewer_client.get("/failures/").content.decode()
    assert page.count('class="failure-group"') == 2
    assert "Traceback (most recent call last)" in page


@pytest.mark.django_db(transaction=True)
def test_group_counts_link_to_exactly_its_jobs(viewer_client):
    dead = [make_dead(task="demo.echo", message=f"row {n} locked") for n in range(3)]
    make_dead(task="demo.echo", message="other")
    retrying = make(
        task="demo.echo",
        status=Status.RETRYING,
        error_type="DemoFailure",
        last_error="row 9 locked",
        error_fingerprint=dead[0].error_fingerprint,
    )
    group = next(
        g
        for g in failures.failure_board().groups
        if g.fingerprint == dead[0].error_fingerprint
    )
    assert (group.dead, group.retrying, group.count) == (3, 1, 4)
    assert group.first_seen is not None and group.last_seen is not None
    page = viewer_client.get("/failures/").content.decode()
    assert f'href="/jobs/?{group.dead_query}"'.replace("&", "&amp;") in page
    assert listed(
        viewer_client,
        **dict(status="dead", task="demo.echo", fingerprint=group.fingerprint),
    ) == {r.pk for r in dead}
    assert listed(viewer_client, status="retrying", fingerprint=group.fingerprint) == {
        retrying.pk
    }


@pytest.mark.django_db(transaction=True)
def test_groups_come_newest_failure_first_with_first_and_last_seen():
    now = timezone.now()
    retrying = make(
        status=Status.RETRYING,
        error_type="DemoFailure",
        last_error="lock 3 timed out",
        error_fingerprint=fingerprint("demo.echo", "DemoFailure", "lock 3 timed out"),
        started_at=now - timedelta(minutes=10),
    )
    first, second = (make_dead(message=f"lock {n} timed out") for n in (1, 2))
    other = make_dead(message="disk full")
    for record, ago in ((first, 180), (second, 60), (other, 30)):
        JobRecord.objects.filter(pk=record.pk).update(
            finished_at=now - timedelta(minutes=ago)
        )

    board = failures.failure_board()
    locks, disk = board.groups
    assert (locks.dead, locks.retrying, disk.dead, disk.retrying) == (2, 1, 1, 0)
    # A retrying job has no finished_at: it was last seen when it started.
    assert locks.last_seen == now - timedelta(minutes=10)
    assert locks.first_seen == now - timedelta(minutes=180)
    assert disk.first_seen == disk.last_seen == now - timedelta(minutes=30)
    # The example is the latest failure (here the retrying job's).
    assert locks.example_job == retrying.pk
    assert disk.message == "disk full" and "DemoFailure: disk full" in disk.traceback
    assert not board.truncated
    newest = failures.failure_board(limit=1)
    assert [g.fingerprint for g in newest.groups] == [locks.fingerprint]
    assert newest.truncated


def test_error_text_is_escaped_on_the_failures_page(viewer_client):
    make_dead(task="demo.echo", message="<script>alert(1)</script>")
    body = viewer_client.get("/failures/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_empty_failures_page_says_what_would_appear(viewer_client):
    body = viewer_client.get("/failures/").content.decode()
    assert "No failures. Jobs that exhaust their retries land here" in body
    assert 'hx-trigger="every 2s [document.visibilityState' in body


def test_htmx_refresh_returns_only_the_groups(viewer_client):
    make_dead(task="demo.echo")
    partial = viewer_client.get("/failures/", HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert body.lstrip().startswith('<section id="failure-groups"')
    assert "<html" not in body and "updated <time" in body


@pytest.mark.django_db(transaction=True)
def test_retry_all_asks_with_the_count_then_retries_the_groups_dead_jobs_only(
    operator_client,
):
    group = [
        make_dead(task="demo.echo", message=f"timeout after {n} s") for n in (1, 2)
    ]
    other = make_dead(task="demo.echo", message="another cause")
    key = group[0].error_fingerprint
    url = f"/failures/{key}/retry/"
    # The first post only asks, in a panel (HTMX) stating the exact count.
    asked = operator_client.post(url, {"task": "demo.echo"}, HTTP_HX_REQUEST="true")
    body = asked.content.decode()
    assert "<html" not in body and "Retry <strong>2 jobs</strong>" in body
    assert "the dead jobs of failure group demo.echo DemoFailure: timeout" in body
    assert f'action="{url}"' in body and 'name="expected" value="2"' in body
    assert JobRecord.objects.filter(status=Status.DEAD).count() == 3
    assert not OperatorAction.objects.exists()

    done = operator_client.post(
        url, {"task": "demo.echo", "confirm": "yes", "expected": "2"}, follow=True
    )
    assert "Retried 2 jobs" in messages_of(done)
    assert JobRecord.objects.filter(status=Status.DEAD).get() == other
    entry = OperatorAction.objects.get()
    assert (entry.action, entry.count, entry.origin) == ("retry", 2, Origin.WEB)
    assert key[:12] in entry.target and "demo.echo DemoFailure: timeout" in entry.target
    # Again: nothing left in the group; nothing done, said so.
    again = operator_client.post(url, {"task": "demo.echo"})
    assert again.status_code == 302
    follow = operator_client.get(again["Location"])
    assert "No jobs match; nothing done" in messages_of(follow)


@pytest.mark.django_db(transaction=True)
def test_group_action_refuses_when_more_jobs_died_than_were_confirmed(
    operator_client,
):
    group = [make_dead(task="demo.echo", message=f"quota {n} exceeded") for n in "12"]
    key = group[0].error_fingerprint
    again = operator_client.post(
        f"/failures/{key}/retry/",
        {"task": "demo.echo", "confirm": "yes", "expected": "1"},
    )
    assert "Nothing done: 2 jobs match now, not the 1 you confirmed" in (
        again.content.decode()
    )
    assert JobRecord.objects.filter(status=Status.DEAD).count() == 2


def test_discard_all_confirms_with_the_count(operator_client):
    group = [make_dead(task="demo.echo", message=f"quota {n} exceeded") for n in (1, 2)]
    key = group[0].error_fingerprint
    body = operator_client.get("/failures/").content.decode()
    assert "hx-confirm" not in body and "Discard all…" in body

    asked = operator_client.post(f"/failures/{key}/discard/", {"task": "demo.echo"})
    assert asked.status_code == 200
    assert "Delete <strong>2 jobs</strong>" in asked.content.decode()
    assert JobRecord.objects.count() == 2
    # A confirmation without the count the operator saw is no confirmation.
    operator_client.post(
        f"/failures/{key}/discard/", {"task": "demo.echo", "confirm": "yes"}
    )
    assert JobRecord.objects.count() == 2

    done = operator_client.post(
        f"/failures/{key}/discard/",
        {"task": "demo.echo", "confirm": "yes", "expected": "2"},
        follow=True,
    )
    assert "Deleted 2 jobs" in messages_of(done)
    assert not JobRecord.objects.exists()
    assert OperatorAction.objects.get().action == "delete"


def test_unknown_group_is_a_message_not_an_error(operator_client):
    response = operator_client.post("/failures/nope/discard/", {}, follow=True)
    assert response.status_code == 200
    assert "No jobs match; nothing done" in messages_of(response)


# -- operator log -------------------------------------------------------------


def act(actor: User | None, action: str, origin: str, at: datetime, **kw: Any):
    entry = services.audit(
        actor=actor,
        action=action,
        target=kw.pop("target", "jobs"),
        count=1,
        origin=origin,
        **kw,
    )
    OperatorAction.objects.filter(pk=entry.pk).update(at=at)
    return entry


@pytest.mark.django_db(transaction=True)
def test_operator_log_lists_newest_first_and_filters(viewer_client, operator_user):
    now = timezone.now()
    two_hours_ago = now - timedelta(hours=2)
    older = act(operator_user, "retry", Origin.WEB, two_hours_ago, reason="flaky")
    newer = act(None, "pause", Origin.CLI, now - timedelta(minutes=1))
    api = act(operator_user, "delete", Origin.API, now - timedelta(minutes=5))

    def shown(**query: str) -> list[int]:
        page = viewer_client.get("/operator-log/?" + urlencode(query))
        assert page.status_code == 200
        return [e.pk for e in page.context["page"]]

    assert shown() == [newer.pk, api.pk, older.pk]
    assert shown(actor="operators") == [api.pk, older.pk]
    assert shown(actor="system") == [newer.pk]
    assert shown(action="retry") == [older.pk]
    assert shown(origin="api") == [api.pk]
    assert shown(actor="operators", origin="web") == [older.pk]
    body = viewer_client.get("/operator-log/").content.decode()
    assert "flaky" in body and "Command line" in body
    bad = viewer_client.get("/operator-log/?origin=mars")
    assert "unknown origin 'mars' ignored" in messages_of(bad)
    assert len(bad.context["page"].object_list) == 3


@pytest.mark.django_db(transaction=True)
def test_operator_log_pages_keep_the_filter(viewer_client):
    now = timezone.now()
    for n in range(55):
        act(None, "retry", Origin.WEB, now - timedelta(seconds=n))
    act(None, "pause", Origin.WEB, now)
    first = viewer_client.get("/operator-log/?action=retry")
    assert 'href="?action=retry&amp;page=2"' in first.content.decode()
    second = viewer_client.get("/operator-log/?action=retry&page=2")
    assert len(second.context["page"].object_list) == 5


@pytest.mark.django_db(transaction=True)
def test_operator_log_escapes_and_has_an_empty_state(viewer_client):
    body = viewer_client.get("/operator-log/").content.decode()
    assert "No operator actions yet" in body
    act(None, "retry", Origin.WEB, timezone.now(), reason="<b>why</b>")
    body = viewer_client.get("/operator-log/").content.decode()
    assert "<b>why</b>" not in body and "&lt;b&gt;why&lt;/b&gt;" in body


@pytest.mark.django_db(transaction=True)
def test_bulk_round_trips_dates_through_the_hidden_fields(operator_client):
    old = make_dead(submitted_at=timezone.now() - timedelta(days=30))
    new = make_dead()
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d")
    page = operator_client.get(f"/jobs/?status=dead&since={since}")
    body = page.content.decode()
    hidden = page.context["filter"].as_query()["since"]
    assert f'<input type="hidden" name="since" value="{hidden}">' in body
    assert f'value="{since}"' in body  # the form shows it as typed
    response = bulk(
        operator_client, "delete", status="dead", since=hidden, confirm="yes"
    )
    assert "Deleted 1 job" in messages_of(response)
    assert list(JobRecord.objects.values_list("pk", flat=True)) == [old.pk]
    assert new.pk not in listed(operator_client)
