"""Every bulk action on the Jobs screen states its exact count and asks first,
through one confirmation, with or without JavaScript."""

from __future__ import annotations

import pytest

from jobs.models import JobRecord, OperatorAction
from tests.test_history_screens import make, make_dead, messages_of

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRecord.Status
HTMX = {"HTTP_HX_REQUEST": "true"}


def statuses() -> dict[str, str]:
    return dict(JobRecord.objects.values_list("pk", "status"))


@pytest.mark.parametrize("action", ["retry", "cancel", "delete"])
def test_a_bulk_post_without_confirmation_does_nothing_and_states_the_count(
    operator_client, action
):
    for _ in range(3):
        make_dead(task="demo.echo")
        make(task="demo.echo", status=Status.QUEUED)
    make(task="demo.sleep", status=Status.QUEUED)
    before = statuses()
    asked = operator_client.post("/jobs/bulk/", {"action": action, "task": "demo.echo"})
    body = asked.content.decode()
    assert asked.status_code == 200
    assert f"{action.capitalize()} <strong>6 jobs</strong>" in body
    assert "matching <code" in body and "task=demo.echo" in body
    assert 'name="expected" value="6"' in body
    assert statuses() == before
    assert not OperatorAction.objects.exists()


def test_no_filter_says_it_is_every_job_in_the_history(operator_client):
    for _ in range(4):
        make(status=Status.QUEUED)
    page = operator_client.get("/jobs/").content.decode()
    assert "in the history (no filter)" in page
    asked = operator_client.post("/jobs/bulk/", {"action": "cancel"})
    body = asked.content.decode()
    assert "Cancel <strong>all 4 jobs</strong>" in body
    assert "<strong>in the history</strong>" in body
    assert set(statuses().values()) == {Status.QUEUED}


def test_confirmed_cancel_acts_on_exactly_the_matching_jobs(operator_client):
    chosen = [make(task="demo.echo", status=Status.QUEUED) for _ in range(3)]
    other = make(task="demo.sleep", status=Status.QUEUED)
    done = operator_client.post(
        "/jobs/bulk/",
        {"action": "cancel", "task": "demo.echo", "confirm": "yes", "expected": "3"},
        follow=True,
    )
    assert "Canceled 3 jobs" in messages_of(done)
    after = statuses()
    assert {after[j.pk] for j in chosen} == {Status.CANCELED}
    assert after[other.pk] == Status.QUEUED
    assert OperatorAction.objects.get().count == 3


def test_more_matches_than_confirmed_asks_again(operator_client):
    for _ in range(2):
        make_dead()
    make_dead()  # died after the operator read "2 jobs"
    again = operator_client.post(
        "/jobs/bulk/",
        {"action": "retry", "status": "dead", "confirm": "yes", "expected": "2"},
    )
    body = again.content.decode()
    assert "Nothing done: 3 jobs match now, not the 2 you confirmed" in body
    assert 'name="expected" value="3"' in body
    assert set(statuses().values()) == {Status.DEAD}
    assert not OperatorAction.objects.exists()


def test_with_htmx_the_confirmation_replaces_the_form_and_then_reloads(
    operator_client,
):
    make(status=Status.QUEUED)
    asked = operator_client.post("/jobs/bulk/", {"action": "cancel"}, **HTMX)
    fragment = asked.content.decode()
    assert "<html" not in fragment and 'id="bulk"' in fragment
    assert "Cancel <strong>1 job</strong>" in fragment
    done = operator_client.post(
        "/jobs/bulk/", {"action": "cancel", "confirm": "yes", "expected": "1"}, **HTMX
    )
    assert done.headers["HX-Redirect"] == "/jobs/"
    assert set(statuses().values()) == {Status.CANCELED}
