"""The JSON API for other services: the same services as every other door.

Authentication: `Authorization: Bearer <token>` (per-user tokens made in the
admin, stored hashed). Permissions: the viewer/operator roles. Errors are JSON
`{"error": message, "field": name}` with the right 4xx status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobs import selectors, services
from jobs.backend import live
from jobs.models import JobRecord, Origin, QueueState
from jobs.selectors.overview import overview
from jobs.selectors.stats_text import stats_json
from jobs.services.validation import (
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TERM_LENGTH,
    UnknownReference,
    as_whole,
    check_text,
)
from jobs.tokens import token_user

View = Callable[..., JsonResponse]
MAX_BODY = 1_100_000
PAGE_SIZE = 100
SUBMIT_FIELDS = (
    "task",
    "payload",
    "queue",
    "priority",
    "delay",
    "run_at",
    "depends_on",
    "allow_failure",
    "idempotency_key",
    "retry",
    "timeout",
)
#: Body fields whose text may be longer than a name or a search term.
TEXT_LIMITS = {"reason": MAX_REASON_LENGTH, "idempotency_key": MAX_KEY_LENGTH}


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error(status: int, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=status)


def not_allowed(request: HttpRequest, methods: tuple[str, ...]) -> JsonResponse:
    """405, with the Allow header that HTTP requires of it."""
    refused = error(405, f"method {request.method} not allowed")
    refused["Allow"] = ", ".join(methods)
    return refused


def endpoint(
    *methods: str, operate: bool = False, query: tuple[str, ...] = ()
) -> Callable[[View], View]:
    """Bearer auth, method check, permission check, the query parameters
    the view reads (no others: a misspelt filter must not silently widen a
    search), the text rule on each of them and on every path part, and JSON
    errors for a view."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                return not_allowed(request, methods)
            scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
            user = token_user(secret.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                return error(401, "missing or invalid bearer token")
            if not user.has_perm("jobs.view_jobrecord"):
                return error(403, "this token's user may not read jobs")
            if operate and not user.has_perm("jobs.operate"):
                return error(403, "this token's user may not act on jobs (viewer)")
            request.user = user
            try:
                _check_inputs(request, kwargs, query)
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.field)
            except services.InvalidInput as exc:
                status = 404 if isinstance(exc, UnknownReference) else 400
                return error(status, str(exc), next(iter(exc.errors)))

        return wrapper

    return decorate


def _check_inputs(
    request: HttpRequest, path: dict[str, Any], known: tuple[str, ...]
) -> None:
    for name, values in request.GET.lists():
        if name not in known:
            raise ApiError(400, f"unknown query parameter {name[:40]!r}", name[:40])
        for value in values:
            check_text(name, value)
    for name, value in path.items():
        check_text(name, str(value), identifier=True)


def body(request: HttpRequest, known: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object sent, with only the `known` fields (a misspelt option
    must not be silently dropped) and its text fields held to the text rule
    (a payload has its own rule: see services.validation.stored_payload)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        raise ApiError(413, "request body larger than 1 MB")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "request body larger than 1 MB") from None
    if len(raw) > MAX_BODY:
        raise ApiError(413, "request body larger than 1 MB")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    for name, value in data.items():
        if name not in known:
            raise ApiError(400, f"unknown field {name[:40]!r}", name[:40])
        if isinstance(value, str) and name != "payload":
            check_text(name, value, max_length=TEXT_LIMITS.get(name, MAX_TERM_LENGTH))
    return data


def _job(job_id: str) -> JobRecord:
    record = JobRecord.objects.select_related("submitted_by").filter(pk=job_id).first()
    if record is None:
        raise ApiError(404, f"no such job: {job_id}", "job_id")
    return record


def _optional(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """data[name] if it is of `kind`; null or absent is None (the default)."""
    value = data.get(name)
    if value is None:
        return None
    if kind is int:
        value = as_whole(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ApiError(400, f"{name} must be {KIND_NAMES[kind]}", name)
    return value


KIND_NAMES: dict[Any, str] = {
    str: "a string",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    (int, float): "a number of seconds",
    int: "a whole number",
}


def _reason(request: HttpRequest) -> str:
    return _optional(body(request, ("reason",)), "reason", str) or ""


def _submit(request: HttpRequest) -> JsonResponse:
    data = body(request, SUBMIT_FIELDS)
    if "delay" in data and "run_at" in data:
        raise ApiError(400, "give a delay or a run-at time, not both", "delay")
    task = data.get("task")
    if not isinstance(task, str) or not task:
        raise ApiError(400, "task is required (a registered task name)", "task")
    depends_on = _optional(data, "depends_on", list) or []
    if not all(isinstance(d, str) for d in depends_on):
        raise ApiError(400, "depends_on must be a list of job ids", "depends_on")
    run_at = None
    if _optional(data, "run_at", str) is not None:
        run_at = selectors.parse_when(data["run_at"], zoned=True)
        if run_at is None:
            raise ApiError(
                400, "run_at must be a time with its zone (RFC 3339)", "run_at"
            )
    record = services.job_submit(
        task=task,
        payload=_optional(data, "payload", dict),
        queue=_optional(data, "queue", str),
        priority=_optional(data, "priority", str),
        delay=_optional(data, "delay", (int, float)),
        run_at=run_at,
        depends_on=depends_on,
        allow_failure=bool(_optional(data, "allow_failure", bool)),
        idempotency_key=_optional(data, "idempotency_key", str),
        retry=_optional(data, "retry", dict),
        timeout=_optional(data, "timeout", int),
        actor=request.user,
        origin=Origin.API,
    )
    return JsonResponse(selectors.job_json(record), status=201)


@endpoint("GET", "POST", query=(*selectors.JobFilter.FIELDS, "page"))
def jobs_collection(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        if not request.user.has_perm("jobs.operate"):
            raise ApiError(403, "this token's user may not submit jobs (viewer)")
        return _submit(request)
    job_filter = selectors.JobFilter.from_mapping(request.GET)
    if job_filter.problems:
        raise ApiError(400, "; ".join(job_filter.problems), job_filter.invalid[0])
    number = request.GET.get("page", "1")
    if not (number.isascii() and number.isdigit() and 0 < int(number) < 10**9):
        raise ApiError(400, "page must be a whole number from 1", "page")
    page = Paginator(selectors.job_search(job_filter), PAGE_SIZE).get_page(number)
    return JsonResponse(
        {
            "results": [selectors.job_json(r) for r in page],
            "page": page.number,
            "has_next": page.has_next(),
        }
    )


@endpoint("GET")
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    return JsonResponse(selectors.job_json(_job(job_id)))


@endpoint("POST", operate=True)
def job_action(request: HttpRequest, job_id: str, action: str) -> JsonResponse:
    """POST jobs/<id>/retry/ or cancel/ (the urls name the action); 409 with
    the reason when the job's status is not one the action applies to."""
    record = _job(job_id)
    result = services.job_act(
        action=action,
        record=record,
        actor=request.user,
        origin=Origin.API,
        reason=_reason(request),
    )
    summary = result.summary(services.JOB_ACTIONS[action].verb)
    if not result.done:
        raise ApiError(409, summary, "status")
    record.refresh_from_db()
    return JsonResponse({"message": summary, "job": selectors.job_json(record)})


@endpoint("GET")
def queue_collection(request: HttpRequest) -> JsonResponse:
    depths = live.queue_depths(settings.JOB_QUEUES)
    states = {s.name: s for s in QueueState.objects.all()}
    return JsonResponse(
        {
            "results": [
                {
                    "name": name,
                    "paused": bool(states.get(name) and states[name].paused),
                    "pause_reason": states[name].reason if name in states else "",
                    "queued": depth.queued,
                    "scheduled": depth.scheduled,
                    "started": depth.started,
                    "deferred": depth.deferred,
                    "oldest_wait_seconds": depth.oldest_wait,
                }
                for name, depth in depths.items()
            ]
        }
    )


@endpoint("GET")
def stats(request: HttpRequest) -> JsonResponse:
    """The overview's figures, as `jobs stats --json` prints them."""
    return JsonResponse(stats_json(overview()))


def _queue_name(name: str) -> str:
    if name not in settings.JOB_QUEUES:
        raise ApiError(404, f"no such queue: {name}", "name")
    return name


@endpoint("POST", operate=True)
def queue_switch(request: HttpRequest, name: str, switch: str) -> JsonResponse:
    """POST queues/<name>/pause/ or resume/."""
    reason = _reason(request)
    state = services.queue_set_paused(
        name=_queue_name(name),
        paused=switch == "pause",
        actor=request.user,
        reason=reason,
        origin=Origin.API,
    )
    return JsonResponse({"name": state.name, "paused": state.paused, "reason": reason})


@endpoint("POST", operate=True)
def worker_stop(request: HttpRequest, name: str) -> JsonResponse:
    """POST workers/<name>/stop/: ask a live worker to stop (its running jobs
    finish); asked false when it was asked already or is stopping."""
    asked = services.worker_stop(
        name=name, actor=request.user, reason=_reason(request), origin=Origin.API
    )
    return JsonResponse({"name": name, "asked": asked}, status=202)


def schema(request: HttpRequest) -> JsonResponse:
    """The OpenAPI document: public, like any API's published contract."""
    from jobs.openapi import document

    if request.method not in ("GET", "HEAD"):
        return not_allowed(request, ("GET", "HEAD"))
    return JsonResponse(document())
