"""Issue 15.3: /api/schema/ is the API's contract, checked both ways.

The document is validated as OpenAPI 3.1, then every operation in it is
driven in-process (Django's WSGI app, an operator's bearer token) by
schemathesis with requests generated from the document itself: valid ones
must be accepted, invalid ones refused, and every answer's status, content
type, headers and body must be the ones the document describes.
"""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.utils import timezone
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobs.models import JobRecord
from jobs.selectors import parse_when
from jobs.services.validation import MAX_DELAY_SECONDS
from jobs.tokens import token_create
from tests.factories import user_in

pytestmark = pytest.mark.django_db(transaction=True)

#: Bounded: a fixed seed, and few examples per operation and phase.
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 15,
        "generation": {"max-examples": 8},
        # The coverage phase's boundary cases, except for submissions: their
        # schema (one payload schema per task) takes it a minute to walk.
        "operations": [
            {
                "include-name": "POST /api/jobs/",
                "phases": {"coverage": {"enabled": False}},
                "generation": {"max-examples": 25},
            }
        ],
        "suppress-health-check": ["all"],
    }
)
SCHEMA = schemathesis.openapi.from_wsgi(
    "/api/schema/", get_wsgi_application(), config=CONFIG
)
#: Jobs that exist, in states every action meets (done, dead, waiting), with
#: results of several JSON kinds.
KNOWN: dict[str, dict[str, Any]] = {
    "contract-done": {"status": "succeeded", "result": [1, "two", None]},
    "contract-dead": {"status": "dead", "result": None, "last_error": "boom"},
    "contract-queued": {"status": "queued", "result": {"nested": {"x": 1.5}}},
}


@pytest.fixture
def operator_auth() -> dict[str, str]:
    _token, secret = token_create(user=user_in("Operators"), name="contract")
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def known_jobs() -> None:
    for job_id, fields in KNOWN.items():
        JobRecord.objects.create(
            id=job_id,
            task="demo.echo",
            queue="default",
            payload={"text": job_id},
            submitted_at=timezone.now(),
            **fields,
        )


def test_document_is_valid_openapi_3_1():
    document = Client().get("/api/schema/").json()
    validate(document)
    assert document["openapi"] == "3.1.0"


def _beyond_a_year(case: Any) -> bool:
    """A run_at more than a year ahead is refused (400) like a delay over a
    year; JSON Schema has no bound relative to now, so the document says it
    in words and the generated "valid" time may break it."""
    body = case.body if isinstance(case.body, dict) else {}
    when = parse_when(body["run_at"]) if isinstance(body.get("run_at"), str) else None
    return when is not None and when - timezone.now() > timedelta(
        seconds=MAX_DELAY_SECONDS - 60
    )


@SCHEMA.parametrize()
def test_api_keeps_its_contract(case, operator_auth, known_jobs):
    job_id = (case.path_parameters or {}).get("job_id")
    positive = case._meta is None or case._meta.generation.mode.is_positive
    if positive and isinstance(job_id, str):
        # Most generated ids name no job: send about half to one that exists.
        pick = zlib.crc32(job_id.encode("utf-8", "surrogatepass")) % (2 * len(KNOWN))
        if pick < len(KNOWN):
            case.path_parameters["job_id"] = list(KNOWN)[pick]
    excluded = [positive_data_acceptance] if _beyond_a_year(case) else []
    case.call_and_validate(headers=operator_auth, excluded_checks=excluded)


# -- what the generated requests may not reach -----------------------------


def _document() -> dict[str, Any]:
    return Client().get("/api/schema/").json()


def test_every_other_method_is_405_with_allow(operator_auth):
    for path, item in _document()["paths"].items():
        allowed = {m.upper() for m in item}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed:
            url = path.replace("{job_id}", "x").replace("{name}", "default")
            reply = Client().generic(method, url, headers=operator_auth)
            assert reply.status_code == 405, (method, path)
            assert set(reply["Allow"].split(", ")) == allowed
            assert reply.json()["error"] == f"method {method} not allowed"
            assert "405" in next(iter(item.values()))["responses"]


def test_a_body_over_1_mb_is_413_as_documented(operator_auth):
    big = json.dumps({"task": "demo.echo", "payload": {"text": "x" * 1_200_000}})
    reply = Client().post(
        "/api/jobs/", big, content_type="application/json", headers=operator_auth
    )
    assert reply.status_code == 413 and reply.json()["field"] is None
    assert "413" in _document()["paths"]["/api/jobs/"]["post"]["responses"]


def _submit_schema() -> dict[str, Any]:
    document = _document()
    return {**document["components"]["schemas"]["Submit"], **document}


@pytest.mark.parametrize(
    ("extra", "valid", "status", "field"),
    [
        ({"delay": 5, "run_at": "2030-01-01T00:00:00Z"}, False, 400, "delay"),
        ({"delay": None, "run_at": None}, False, 400, "delay"),
        ({"delay": None}, True, 201, None),
        ({"priority": "urgent"}, False, 400, "priority"),
        ({"delay": 400 * 86400}, False, 400, "delay"),
        ({"allow_failure": "yes"}, False, 400, "allow_failure"),
        ({"payload": {"text": 5}}, False, 400, "payload.text"),
        ({"payload": {"text": "5"}, "priority": None, "queue": None}, True, 201, None),
        ({"colour": "blue"}, False, 400, "colour"),
    ],
)
def test_document_and_api_agree_on_submissions(
    operator_auth, extra, valid, status, field
):
    submission = {"task": "demo.echo", "payload": {"text": "x"}, **extra}
    validator = jsonschema.Draft202012Validator(_submit_schema())
    assert validator.is_valid(submission) == valid
    reply = Client().post(
        "/api/jobs/",
        json.dumps(submission),
        content_type="application/json",
        headers=operator_auth,
    )
    assert reply.status_code == status
    assert reply.json().get("field") == field


def test_run_at_is_capped_at_a_year_like_delay(operator_auth):
    def submit(run_at: str) -> Any:
        return Client().post(
            "/api/jobs/",
            json.dumps(
                {"task": "demo.echo", "payload": {"text": "x"}, "run_at": run_at}
            ),
            content_type="application/json",
            headers=operator_auth,
        )

    for unzoned in ("2030-01-01T09:00:00", "2030-01-01"):  # the document's date-time
        assert submit(unzoned).json()["field"] == "run_at"
    far = submit("9999-12-31T23:59:59+00:00")
    assert (far.status_code, far.json()["field"]) == (400, "run_at")
    assert "within one year" in far.json()["error"]
    soon = (timezone.now() + timedelta(days=300)).isoformat()
    assert submit(soon).status_code == 201


def test_a_null_reason_is_accepted_and_documented(operator_auth):
    reason = _document()["paths"]["/api/queues/{name}/pause/"]["post"]
    schema = reason["requestBody"]["content"]["application/json"]["schema"]
    assert jsonschema.Draft202012Validator(schema).is_valid({"reason": None})
    reply = Client().post(
        "/api/queues/default/pause/",
        json.dumps({"reason": None}),
        content_type="application/json",
        headers=operator_auth,
    )
    assert reply.status_code == 200 and reply.json()["reason"] == ""


@pytest.mark.parametrize(
    "when",
    [
        "2024-01-01t10:00:00z",  # RFC 3339 allows lower case
        "2016-12-31T23:59:60Z",  # and a leap second
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2024-01-01",
    ],
)
def test_every_date_time_the_document_admits_is_read(operator_auth, when):
    for name in ("since", "until"):
        reply = Client().get("/api/jobs/", {name: when}, headers=operator_auth)
        assert reply.status_code == 200, reply.json()
