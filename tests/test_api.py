"""The JSON API: tokens, permissions, errors, and the same services."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.models import JobRecord, OperatorAction
from jobs.tokens import token_create, token_revoke
from tests.conftest import final
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(role: str) -> dict[str, str]:
    _token, secret = token_create(user=user_in(role), name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def operator() -> dict[str, str]:
    return bearer("Operators")


@pytest.fixture
def viewer() -> dict[str, str]:
    return bearer("Viewers")


def post(url, data, auth):
    return Client().post(url, json.dumps(data), content_type="application/json", **auth)


def test_submit_read_and_list(operator, run_until):
    created = post(
        "/api/jobs/",
        {"task": "demo.echo", "payload": {"text": "api"}, "priority": "high"},
        operator,
    )
    assert created.status_code == 201
    job = created.json()
    assert (job["status"], job["priority"], job["origin"]) == ("queued", "high", "api")
    run_until(final(JobRecord.objects.get(pk=job["id"])))
    detail = Client().get(f"/api/jobs/{job['id']}/", **operator).json()
    assert detail["status"] == "succeeded" and detail["result"] == {"text": "api"}
    listing = Client().get("/api/jobs/?task=demo.echo", **operator).json()
    assert [r["id"] for r in listing["results"]] == [job["id"]]
    worker = detail["worker_name"]
    assert worker
    ran = Client().get("/api/jobs/", {"worker": worker}, **operator).json()
    assert [r["id"] for r in ran["results"]] == [job["id"]]
    other = Client().get("/api/jobs/", {"worker": f"{worker}x"}, **operator).json()
    assert other["results"] == []


def test_tokens_are_required_and_checked(operator):
    assert Client().get("/api/jobs/").status_code == 401
    wrong = {"HTTP_AUTHORIZATION": "Bearer jc_not-a-real-token"}
    assert Client().get("/api/jobs/", **wrong).status_code == 401
    token, secret = token_create(user=user_in("Viewers", "v2"), name="t")
    token_revoke(token=token)
    revoked = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert Client().get("/api/jobs/", **revoked).status_code == 401
    assert token.key_hash != secret and secret not in token.key_hash


def test_viewer_token_reads_but_cannot_act(viewer):
    assert Client().get("/api/queues/", **viewer).status_code == 200
    refused = post(
        "/api/jobs/", {"task": "demo.echo", "payload": {"text": "x"}}, viewer
    )
    assert refused.status_code == 403
    assert post("/api/queues/default/pause/", {}, viewer).status_code == 403
    assert JobRecord.objects.count() == 0 and OperatorAction.objects.count() == 0


def test_retry_cancel_and_queue_control_write_the_operator_log(operator, run_until):
    job = post(
        "/api/jobs/",
        {"task": "demo.fail", "payload": {"times": 1}, "retry": {"max_attempts": 1}},
        operator,
    ).json()
    run_until(final(JobRecord.objects.get(pk=job["id"])))
    retried = post(f"/api/jobs/{job['id']}/retry/", {"reason": "fixed"}, operator)
    assert retried.status_code == 200, retried.json()
    again = post(f"/api/jobs/{job['id']}/retry/", {}, operator)
    assert again.status_code == 409
    later = post(
        "/api/jobs/",
        {"task": "demo.echo", "payload": {"text": "x"}, "delay": 600},
        operator,
    ).json()
    assert post(f"/api/jobs/{later['id']}/cancel/", {}, operator).status_code == 200
    assert post("/api/queues/mail/pause/", {"reason": "deploy"}, operator).json()[
        "paused"
    ]
    queues = {
        q["name"]: q for q in Client().get("/api/queues/", **operator).json()["results"]
    }
    assert queues["mail"]["paused"] and queues["mail"]["pause_reason"] == "deploy"
    assert post("/api/queues/mail/resume/", {}, operator).status_code == 200
    actions = list(OperatorAction.objects.values_list("action", "origin"))
    assert {
        ("retry", "api"),
        ("cancel", "api"),
        ("pause", "api"),
        ("resume", "api"),
    } <= set(actions)
    assert OperatorAction.objects.get(action="retry", count=1).reason == "fixed"


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        ({"task": "nope"}, 400, "task"),
        ({"payload": {}}, 400, "task"),
        ({"task": "demo.echo", "payload": {"txt": 1}}, 400, "payload.text"),
        (
            {"task": "demo.echo", "payload": {"text": "x"}, "queue": "nope"},
            400,
            "queue",
        ),
        (
            {"task": "demo.echo", "payload": {"text": "x"}, "run_at": "soon"},
            400,
            "run_at",
        ),
        ({"task": "demo.echo", "payload": {"text": "x"}, "delay": "1"}, 400, "delay"),
        (
            # A job that does not exist, as for a path naming one (issue 15.3).
            {"task": "demo.echo", "payload": {"text": "x"}, "depends_on": ["x"]},
            404,
            "depends_on",
        ),
    ],
)
def test_bad_submissions_are_json_errors_naming_the_field(
    operator, data, status, field
):
    response = post("/api/jobs/", data, operator)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert JobRecord.objects.count() == 0


def test_other_bad_requests(operator):
    client = Client()
    bad_json = client.post(
        "/api/jobs/", "{nope", content_type="application/json", **operator
    )
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    assert client.get("/api/jobs/missing/", **operator).status_code == 404
    assert post("/api/jobs/missing/retry/", {}, operator).status_code == 404
    assert post("/api/queues/nope/pause/", {}, operator).status_code == 404
    assert client.get("/api/jobs/?since=not-a-date", **operator).status_code == 400
    assert client.delete("/api/jobs/", **operator).status_code == 405


def test_openapi_schema_describes_every_endpoint():
    schema = Client().get("/api/schema/").json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/jobs/",
        "/api/jobs/{job_id}/",
        "/api/jobs/{job_id}/retry/",
        "/api/jobs/{job_id}/cancel/",
        "/api/queues/",
        "/api/stats/",
        "/api/queues/{name}/pause/",
        "/api/queues/{name}/resume/",
        "/api/workers/{name}/stop/",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "task": st.sampled_from(["demo.echo", "demo.fail", "x"]) | st.text(),
            "payload": json_values,
            "queue": json_values,
            "priority": json_values,
            "delay": json_values,
            "run_at": json_values,
            "depends_on": json_values,
            "allow_failure": json_values,
            "idempotency_key": json_values,
            "retry": json_values,
        },
    ).map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies)
def test_random_bodies_never_cause_a_server_error(operator, raw):
    response = Client().post(
        "/api/jobs/", raw, content_type="application/json", **operator
    )
    assert response.status_code in (201, 400, 413), response.content
    assert "error" in response.json() or response.status_code == 201


def test_a_submission_may_set_its_own_timeout(operator):
    created = post(
        "/api/jobs/",
        {"task": "demo.sleep", "payload": {"seconds": 1}, "timeout": 30},
        operator,
    )
    assert created.status_code == 201
    assert JobRecord.objects.get(pk=created.json()["id"]).timeout == 30
    refused = post(
        "/api/jobs/",
        {"task": "demo.sleep", "payload": {"seconds": 1}, "timeout": "soon"},
        operator,
    )
    assert refused.status_code == 400
    assert "timeout" in json.dumps(refused.json())
    assert JobRecord.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"task": "demo.echo", "payload": ' + b"[" * 100_000,
        json.dumps({"task": "demo.echo", "payload": {"text": "a\x00"}}).encode(),
        json.dumps(
            {"task": "demo.echo", "payload": {"text": "a"}, "retry": {"cap": None}}
        ).encode(),
        json.dumps(
            {"task": "demo.echo", "payload": {"text": "a"}, "idempotency_key": "\x00"}
        ).encode(),
    ],
    ids=["deep-body", "deep-payload", "nul-payload", "null-cap", "nul-key"],
)
def test_hostile_bodies_get_a_400_and_write_nothing(operator, raw):
    response = Client().post(
        "/api/jobs/", raw, content_type="application/json", **operator
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]
    assert JobRecord.objects.count() == 0
