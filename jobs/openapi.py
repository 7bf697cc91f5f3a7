"""The OpenAPI 3.1 description of the JSON API, served at /api/schema/.

It is the contract: tests/test_openapi.py validates it and drives every
operation from it (generated requests, valid and invalid), so what it admits
the API accepts and what it refuses the API refuses. The bounds come from
the code that enforces them, never from copies of their values.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from jobs import registry
from jobs.models import JobRecord, Origin, Priority
from jobs.services.validation import (
    MAX_DELAY_SECONDS,
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TERM_LENGTH,
    MAX_TIMEOUT_SECONDS,
    RETRY_OPTIONS,
)

ERROR = {"$ref": "#/components/schemas/Error"}
JOB = {"$ref": "#/components/schemas/Job"}
#: The front doors' text rule (services.validation.text_problem) as a
#: pattern: no control character but tab and line breaks.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
#: An identifier: no control character at all.
ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


IDENTIFIER = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN}


def text(max_length: int = MAX_TERM_LENGTH, **extra: Any) -> dict[str, Any]:
    return {
        "type": "string",
        "maxLength": max_length,
        "pattern": TEXT_PATTERN,
        **extra,
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or null (which the API reads as "not given")."""
    return {"anyOf": [schema, {"type": "null"}]}


def _reply(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


ERRORS = {
    "400": _reply("Bad input; `field` names it", ERROR),
    "401": _reply("Missing or invalid bearer token", ERROR),
    "403": _reply("The token's user lacks the permission", ERROR),
    "405": _reply(
        "Not a method of this path",
        ERROR,
        headers={
            "Allow": {
                "description": "The methods this path answers",
                "schema": {"type": "string"},
            }
        },
    ),
}
NOT_FOUND = {"404": _reply("No such job or queue", ERROR)}
TOO_LARGE = {"413": _reply("The request body is larger than 1 MB", ERROR)}


def _op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**ok, **ERRORS}, **extra}


def _body(schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
        }
    }


REASON = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "reason": nullable(
            text(MAX_REASON_LENGTH, description="Recorded in the operator log.")
        )
    },
}
ID_PARAM = [
    {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": IDENTIFIER,
    }
]
QUEUE_PARAM = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": IDENTIFIER,
    }
]
WORKER_PARAM = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "The worker's full name, a job's `worker_name`.",
        "schema": {**IDENTIFIER, "maxLength": MAX_TERM_LENGTH},
    }
]
WHEN = {
    "type": "string",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
    "description": "ISO 8601 date or time; without a zone, the server's.",
}


def _filters() -> list[dict[str, Any]]:
    """The query of GET /jobs/: what jobs.selectors.JobFilter reads. An empty
    value is the same as none."""
    schemas: dict[str, dict[str, Any]] = {
        "status": {"type": "string", "enum": ["", *JobRecord.Status.values]},
        "queue": text(),
        "task": text(),
        "payload": text(description="Text the payload contains (any case)."),
        "error": text(description="Text the last error contains (any case)."),
        "since": {"anyOf": [WHEN, {"const": ""}]},
        "until": {"anyOf": [WHEN, {"const": ""}]},
        "submitted_by": text(description="User name of the submitter."),
        "fingerprint": text(description="A failure group, or `none`."),
        "finished_since": {
            "anyOf": [WHEN, {"const": ""}],
            "description": "Jobs that finished (succeeded, went dead, were "
            "canceled) since then: the jobs behind a figure over a window.",
        },
        "worker": text(
            description="Jobs whose latest attempt ran on this worker: its "
            "full name, a job's `worker_name`, as `rq info` shows it."
        ),
        "failed_since": {
            "anyOf": [WHEN, {"const": ""}],
            "description": "Jobs with an attempt that failed since then.",
        },
        "page": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    }
    return [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in schemas.items()
    ]


def _retry_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {
                "type": "integer" if whole else "number",
                "minimum": low,
                "maximum": high,
            }
            for name, (whole, low, high) in RETRY_OPTIONS.items()
        },
        "description": "Changes to the task's retry policy.",
    }


#: Text a payload cannot hold (PostgreSQL's JSON takes no NUL character).
NO_NUL = {"pattern": "^[^\\u0000]*$"}


def _no_nul(node: Any) -> Any:
    """A task's payload schema with every string held to NO_NUL."""
    if isinstance(node, list):
        return [_no_nul(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: _no_nul(value) for key, value in node.items()}
    kinds = found.get("type")
    if kinds == "string" or (isinstance(kinds, list) and "string" in kinds):
        found = {"allOf": [found, NO_NUL]} if "pattern" in found else found | NO_NUL
    return found


def _payload_schemas(shared: dict[str, Any]) -> dict[str, Any]:
    """task name -> the JSON Schema of its payload; the models they refer to
    are added to `shared` (the document's components)."""
    schemas = {}
    for task in registry.all_tasks():
        schema = task.schema.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name, model in schema.pop("$defs", {}).items():
            shared[name] = _no_nul(model)
        schemas[task.name] = _no_nul(schema)
    return schemas


def _takes_no_payload(task: registry.TaskDef) -> bool:
    try:
        task.schema.model_validate({})
    except ValueError:
        return False
    return True


def _submit_schema(shared: dict[str, Any]) -> dict[str, Any]:
    payloads = _payload_schemas(shared)
    return {
        "type": "object",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {
            "task": {"type": "string", "enum": list(payloads)},
            "payload": nullable({"type": "object", "example": {"text": "hello"}}),
            "queue": nullable({"type": "string", "enum": list(settings.JOB_QUEUES)}),
            "priority": nullable({"type": "string", "enum": Priority.values}),
            "delay": nullable(
                {"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}
            ),
            "run_at": nullable(
                {
                    "type": "string",
                    "format": "date-time",
                    "description": "With a zone; at most a year ahead (as "
                    "`delay`). A past time runs now.",
                }
            ),
            "depends_on": nullable(
                {
                    "type": "array",
                    "items": IDENTIFIER,
                    "description": "Ids of jobs that must finish first.",
                }
            ),
            "allow_failure": nullable({"type": "boolean"}),
            "idempotency_key": nullable(
                {"type": "string", "maxLength": MAX_KEY_LENGTH, "pattern": ID_PATTERN}
            ),
            "timeout": nullable(
                {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS}
            ),
            "retry": nullable(_retry_schema()),
        },
        "oneOf": [
            {
                "description": f"The payload of {name}",
                "properties": {
                    "task": {"const": name},
                    "payload": nullable(schema)
                    if _takes_no_payload(registry.get(name))
                    else schema,
                },
                **(
                    {}
                    if _takes_no_payload(registry.get(name))
                    else {"required": ["payload"]}
                ),
            }
            for name, schema in payloads.items()
        ],
        "not": {
            "description": "A delay or a run-at time, not both.",
            "required": ["delay", "run_at"],
        },
    }


def _job_schema() -> dict[str, Any]:
    when = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "id": {"type": "string"},
        "task": {"type": "string"},
        "queue": {"type": "string"},
        "priority": {"type": "string", "enum": Priority.values},
        "status": {"type": "string", "enum": JobRecord.Status.values},
        "attempts": {"type": "integer", "minimum": 0},
        "max_attempts": {"type": "integer", "minimum": 0},
        "worker_name": {"type": ["string", "null"]},
        "worker_pid": {"type": ["integer", "null"]},
        "origin": {"type": "string", "enum": Origin.values},
        "submitted_by": {"type": ["string", "null"]},
        "submitted_at": {"type": "string", "format": "date-time"},
        "run_at": when,
        "enqueued_at": when,
        "started_at": when,
        "finished_at": when,
        "next_attempt_at": when,
        "payload": {"type": "object"},
        "result": {"description": "What the task returned: any JSON value."},
        "error_type": {"type": ["string", "null"]},
        "last_error": {"type": ["string", "null"]},
        "idempotency_key": {"type": ["string", "null"]},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _queue_schema() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    properties: dict[str, Any] = {
        "name": {"type": "string"},
        "paused": {"type": "boolean"},
        "pause_reason": {"type": "string"},
        "queued": count,
        "scheduled": count,
        "started": count,
        "deferred": count,
        "oldest_wait_seconds": {"type": ["number", "null"], "minimum": 0},
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


QUEUE_STATE = _object(
    name={"type": "string"},
    paused={"type": "boolean"},
    reason={"type": "string"},
)
ACTED = _object(message={"type": "string"}, job=JOB)


def _paths() -> dict[str, Any]:
    return {
        "jobs/": {
            "get": _op(
                "Search jobs, newest first, 100 a page",
                {
                    "200": _reply(
                        "A page of jobs",
                        _object(
                            results={"type": "array", "items": JOB},
                            page={"type": "integer", "minimum": 1},
                            has_next={"type": "boolean"},
                        ),
                    )
                },
                parameters=_filters(),
            ),
            "post": _op(
                "Submit a job",
                {
                    "201": _reply("The new job", JOB),
                    "404": _reply("A job named in depends_on does not exist", ERROR),
                    **TOO_LARGE,
                },
                **_body({"$ref": "#/components/schemas/Submit"}, required=True),
            ),
        },
        "jobs/{job_id}/": {
            "get": _op(
                "One job",
                {"200": _reply("The job", JOB), **NOT_FOUND},
                parameters=ID_PARAM,
            )
        },
        "jobs/{job_id}/retry/": {"post": _action("Retry a dead or canceled job")},
        "jobs/{job_id}/cancel/": {
            "post": _action("Cancel a job (a running one is stopped)")
        },
        "queues/": {
            "get": _op(
                "Queues with live depth and pause state",
                {
                    "200": _reply(
                        "Queues",
                        _object(results={"type": "array", "items": _queue_schema()}),
                    )
                },
            )
        },
        "stats/": {
            "get": _op(
                "The overview's figures: live depths, and finished work over the "
                "last hour as defined in jobs.selectors.figures (the same JSON "
                "as `jobs stats --json`)",
                {"200": _reply("Figures", {"type": "object"})},
            )
        },
        "queues/{name}/pause/": {"post": _queue_action("Pause a queue", "Paused")},
        "queues/{name}/resume/": {"post": _queue_action("Resume a queue", "Resumed")},
        "workers/{name}/stop/": {
            "post": _op(
                "Ask a live worker to stop: it takes no new job, finishes the "
                "ones it runs, then exits (RQ's shutdown command, as SIGTERM); "
                "asked once: `asked` is false when it was asked already",
                {
                    "202": _reply(
                        "Asked",
                        _object(name={"type": "string"}, asked={"type": "boolean"}),
                    ),
                    "404": _reply("No live worker has that name", ERROR),
                    **TOO_LARGE,
                },
                parameters=WORKER_PARAM,
                **_body(REASON),
            )
        },
    }


def _action(summary: str) -> dict[str, Any]:
    return _op(
        summary,
        {
            "200": _reply("Done", ACTED),
            "409": _reply("Not possible in the job's state", ERROR),
            **NOT_FOUND,
            **TOO_LARGE,
        },
        parameters=ID_PARAM,
        **_body(REASON),
    )


def _queue_action(summary: str, done: str) -> dict[str, Any]:
    return _op(
        summary,
        {"200": _reply(done, QUEUE_STATE), **NOT_FOUND, **TOO_LARGE},
        parameters=QUEUE_PARAM,
        **_body(REASON),
    )


def document() -> dict[str, Any]:
    prefix = reverse("api:schema").removesuffix("schema/")
    schemas: dict[str, Any] = {
        "Error": _object(error={"type": "string"}, field={"type": ["string", "null"]}),
        "Job": _job_schema(),
    }
    schemas["Submit"] = _submit_schema(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Jobs console API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "security": [{"bearer": []}],
        "paths": {prefix + path: item for path, item in _paths().items()},
    }
