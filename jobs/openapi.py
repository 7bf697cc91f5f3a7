"""The OpenAPI 3.1 description of the JSON API, served at /api/schema/."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
JOB = {"$ref": "#/components/schemas/Job"}


def _reply(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


ERRORS = {
    "400": _reply("Bad input (the field is named)", ERROR),
    "401": _reply("Missing or invalid bearer token", ERROR),
    "403": _reply("The token's user lacks the permission", ERROR),
    "404": _reply("No such job or queue", ERROR),
}


def _op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**ok, **ERRORS}, **extra}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema}},
        }
    }


REASON = {"type": "object", "properties": {"reason": {"type": "string"}}}
ID_PARAM = [
    {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
]
QUEUE_PARAM = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
]
FILTERS = [
    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
    for n in (
        "status",
        "queue",
        "task",
        "payload",
        "error",
        "since",
        "until",
        "submitted_by",
        "finished_since",
        "failed_since",
        "page",
    )
]

SUBMIT = {
    "type": "object",
    "required": ["task"],
    "properties": {
        "task": {"type": "string", "example": "demo.echo"},
        "payload": {"type": "object", "example": {"text": "hello"}},
        "queue": {"type": "string"},
        "priority": {"type": "string", "enum": ["high", "normal", "low"]},
        "delay": {"type": "number", "minimum": 0},
        "run_at": {"type": "string", "format": "date-time"},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "allow_failure": {"type": "boolean"},
        "idempotency_key": {"type": "string"},
        "timeout": {"type": "integer", "minimum": 1, "maximum": 86400},
        "retry": {
            "type": "object",
            "properties": {
                "max_attempts": {"type": "integer"},
                "base": {"type": "number"},
                "factor": {"type": "number"},
                "cap": {"type": "number"},
                "jitter": {"type": "number"},
            },
        },
    },
}

JOB_SCHEMA = {
    "type": "object",
    "properties": {
        name: {"type": kind}
        for name, kind in {
            "id": "string",
            "task": "string",
            "queue": "string",
            "priority": "string",
            "status": "string",
            "attempts": "integer",
            "max_attempts": "integer",
            "worker_name": ["string", "null"],
            "worker_pid": ["integer", "null"],
            "origin": "string",
            "submitted_by": ["string", "null"],
            "submitted_at": "string",
            "run_at": ["string", "null"],
            "enqueued_at": ["string", "null"],
            "started_at": ["string", "null"],
            "finished_at": ["string", "null"],
            "next_attempt_at": ["string", "null"],
            "payload": "object",
            "result": {},
            "error_type": ["string", "null"],
            "last_error": ["string", "null"],
            "idempotency_key": ["string", "null"],
        }.items()
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Jobs console API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                },
                "Job": JOB_SCHEMA,
                "Submit": SUBMIT,
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/jobs/": {
                "get": _op(
                    "Search jobs",
                    {
                        "200": _reply(
                            "A page of jobs",
                            {
                                "type": "object",
                                "properties": {
                                    "results": {"type": "array", "items": JOB},
                                    "page": {"type": "integer"},
                                    "has_next": {"type": "boolean"},
                                },
                            },
                        )
                    },
                    parameters=FILTERS,
                ),
                "post": _op(
                    "Submit a job",
                    {"201": _reply("The new job", JOB)},
                    **_body({"$ref": "#/components/schemas/Submit"}),
                ),
            },
            "/api/jobs/{job_id}/": {
                "get": _op(
                    "One job", {"200": _reply("The job", JOB)}, parameters=ID_PARAM
                )
            },
            "/api/jobs/{job_id}/retry/": {
                "post": _op(
                    "Retry a dead or canceled job",
                    {
                        "200": _reply("Done", {"type": "object"}),
                        "409": _reply("Not retryable now", ERROR),
                    },
                    parameters=ID_PARAM,
                    **_body(REASON),
                )
            },
            "/api/jobs/{job_id}/cancel/": {
                "post": _op(
                    "Cancel a job that has not started",
                    {
                        "200": _reply("Done", {"type": "object"}),
                        "409": _reply("Not cancelable now", ERROR),
                    },
                    parameters=ID_PARAM,
                    **_body(REASON),
                )
            },
            "/api/queues/": {
                "get": _op(
                    "Queues with live depth and pause state",
                    {"200": _reply("Queues", {"type": "object"})},
                )
            },
            "/api/stats/": {
                "get": _op(
                    "The overview's figures: live depths, and finished work "
                    "over the last hour as defined in jobs.selectors.figures "
                    "(the same JSON as `jobs stats --json`)",
                    {"200": _reply("Figures", {"type": "object"})},
                )
            },
            "/api/queues/{name}/pause/": {
                "post": _op(
                    "Pause a queue",
                    {"200": _reply("Paused", {"type": "object"})},
                    parameters=QUEUE_PARAM,
                    **_body(REASON),
                )
            },
            "/api/queues/{name}/resume/": {
                "post": _op(
                    "Resume a queue",
                    {"200": _reply("Resumed", {"type": "object"})},
                    parameters=QUEUE_PARAM,
                    **_body(REASON),
                )
            },
        },
    }
