"""Issue 15.2: text the database cannot take or search (a NUL character, a
lone surrogate, control characters, a term too long) is refused by one rule
at every front door with a clear error, never a 500."""

from __future__ import annotations

import json
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.models import JobRecord, OperatorAction, QueueState
from jobs.services.validation import text_problem
from jobs.tokens import token_create
from tests.factories import user_in
from tests.test_api import bearer
from tests.test_history_screens import make, messages_of

pytestmark = pytest.mark.django_db(transaction=True)

#: Search terms of three characters or more reach SQLite's FTS5 index.
BAD_TERMS = {
    "error": "\x00abc",
    "payload": "hello\x00",
    "task": "demo\x00echo",
    "queue": "a\x01b",
    "submitted_by": "x" * 201,
}


def test_the_rule():
    assert text_problem("needle in a haystack") is None
    assert text_problem("two\nlines\tand a tab") is None
    assert "NUL" in str(text_problem("a\x00b"))
    assert "surrogate" in str(text_problem("a\ud800b"))
    assert "control character (\\x1b)" in str(text_problem("\x1b[2J"))
    assert "at most 200" in str(text_problem("x" * 201))
    assert text_problem("x" * 201, max_length=500) is None
    assert "printable" in str(text_problem("a\nb", identifier=True))


@pytest.mark.parametrize(("name", "term"), BAD_TERMS.items())
def test_api_search_refuses_bad_text_naming_the_parameter(name, term):
    make(payload={"text": "hello"}, last_error="abc")
    reply = Client().get("/api/jobs/?" + urlencode({name: term}), **bearer("Viewers"))
    assert reply.status_code == 400
    assert reply["Content-Type"] == "application/json"
    assert reply.json()["field"] == name


def test_api_refuses_bad_text_in_bodies_and_paths():
    auth = bearer("Operators")
    job = make(status=JobRecord.Status.DEAD)
    for reason in ("\x00", "\ud800", "r" * 501):
        reply = Client().post(
            f"/api/jobs/{job.pk}/retry/",
            json.dumps({"reason": reason}),
            content_type="application/json",
            **auth,
        )
        assert (reply.status_code, reply.json()["field"]) == (400, "reason")
    reply = Client().post(
        "/api/jobs/",
        json.dumps({"task": "demo.echo", "queue": "default\x00"}),
        content_type="application/json",
        **auth,
    )
    assert (reply.status_code, reply.json()["field"]) == (400, "queue")
    reply = Client().get("/api/jobs/a%00b/", **auth)
    assert (reply.status_code, reply.json()["field"]) == (400, "job_id")
    assert OperatorAction.objects.count() == 0


def test_jobs_screen_shows_bad_text_as_a_problem_not_a_500(viewer_client):
    make(payload={"text": "hello"})
    for name, term in BAD_TERMS.items():
        page = viewer_client.get("/jobs/?" + urlencode({name: term}))
        assert page.status_code == 200
        assert any(note.startswith(f"{name}: ") for note in messages_of(page))
        # The refused term is dropped, said so, and nothing else breaks.
        assert len(page.context["page"].rows) == 1


def test_console_refuses_bad_text_in_bulk_filters_paths_and_reasons():
    client = Client()
    client.force_login(user_in("Operators"))
    job = make(status=JobRecord.Status.DEAD)
    bulk = client.post(
        "/jobs/bulk/", {"action": "retry", "payload": "abc\x00"}, follow=True
    )
    assert any("NUL" in note for note in messages_of(bulk))
    assert JobRecord.objects.get(pk=job.pk).status == JobRecord.Status.DEAD
    assert client.get("/jobs/a%00b/").status_code == 404
    log = client.get("/operator-log/?" + urlencode({"actor": "x\x00y"}))
    assert log.status_code == 200
    assert any(note.startswith("actor: ") for note in messages_of(log))
    client.post("/queues/default/pause/", {"reason": "why\x00"})
    assert not QueueState.objects.filter(name="default", paused=True).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--error", "\x00abc"], "error: contains a NUL character"),
        # Bytes that are not UTF-8 reach argv as lone surrogates.
        (["list", "--payload", "caf\udce9"], "payload: is not valid Unicode"),
        (["status", "job\x1b"], "id: printable characters only"),
        (["pause", "default", "--reason", "r" * 501], "reason: at most 500"),
    ],
)
def test_cli_refuses_bad_text_with_a_command_error(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("jobs", *args, stdout=StringIO())
    assert OperatorAction.objects.count() == 0


def test_admin_search_refuses_bad_text_with_a_message():
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    make(payload={"text": "hello"})
    # A thousand words nest SQLite's query past its depth limit (a 500);
    # Django's own check refuses a NUL character, not other control ones.
    for term in ("a " * 1000, "hello\x1b"):
        for url in ("/admin/jobs/jobrecord/", "/admin/jobs/operatoraction/"):
            page = client.get(url, {"q": term})
            assert page.status_code == 200
            assert b"Search: " in page.content


# Arbitrary text, NUL and surrogates included, at every search parameter.
ANY_TEXT = st.text(st.characters(codec=None), max_size=20) | st.sampled_from(
    ["\x00abc", "hello\x00", "\ud800xyz", "%", "_", '"', "*", "abc" * 80]
)
FILTERS = (
    "status",
    "queue",
    "task",
    "payload",
    "error",
    "since",
    "until",
    "submitted_by",
    "fingerprint",
    "page",
)


@pytest.fixture
def api_viewer() -> dict[str, str]:
    _token, secret = token_create(user=user_in("Viewers", "api-viewer"), name="t")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=st.sampled_from(FILTERS), term=ANY_TEXT)
def test_no_search_term_makes_a_server_error(viewer_client, api_viewer, name, term):
    """The database is not reset between examples: fine, nothing here writes."""
    query = urlencode({name: term.encode("utf-8", "surrogatepass")})
    api = Client().get("/api/jobs/?" + query, **api_viewer)
    assert api.status_code in (200, 400), api.content[:200]
    assert api["Content-Type"] == "application/json"
    screen = viewer_client.get("/jobs/?" + query)
    assert screen.status_code == 200


def test_a_time_at_the_calendars_edge_is_no_500(viewer_client, settings):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14
    page = viewer_client.get(
        "/jobs/?since=0001-01-01T00:00:00%2B01:00&until=9999-12-31"
    )
    assert page.status_code == 200


def test_admin_reason_form_holds_the_rule():
    client = Client()
    client.force_login(User.objects.create_superuser("root", "r@example.com", "pw"))
    client.get("/admin/jobs/queuestate/")  # lists (and so creates) every queue
    asked = client.post(
        "/admin/jobs/queuestate/",
        {"action": "pause", "_selected_action": ["mail"], "reason": "deploy\x1b[2J"},
    )
    assert asked.status_code == 200
    assert b"contains a control character" in asked.content
    assert not QueueState.objects.get(name="mail").paused
