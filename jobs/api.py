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
from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobs import live, selectors, services
from jobs.models import JobRecord, Origin, QueueState
from jobs.selectors.overview import overview
from jobs.selectors.stats_text import stats_json
from jobs.tokens import token_user

View = Callable[..., JsonResponse]
MAX_BODY = 1_100_000
PAGE_SIZE = 100


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error(status: int, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=status)


def endpoint(*methods: str, operate: bool = False) -> Callable[[View], View]:
    """Bearer auth, method check, permission check and JSON errors for a view."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                return error(405, f"method {request.method} not allowed")
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
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.field)
            except services.InvalidInput as exc:
                field, messages = next(iter(exc.errors.items()))
                return error(400, str(exc), field)

        return wrapper

    return decorate


def body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY:
        raise ApiError(413, "request body larger than 1 MB")
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def _job(job_id: str) -> JobRecord:
    record = JobRecord.objects.select_related("submitted_by").filter(pk=job_id).first()
    if record is None:
        raise ApiError(404, f"no such job: {job_id}", "id")
    return record


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string", name)
    return value


def _submit(request: HttpRequest) -> JsonResponse:
    data = body(request)
    task = data.get("task")
    if not isinstance(task, str) or not task:
        raise ApiError(400, "task is required (a registered task name)", "task")
    depends_on = data.get("depends_on") or []
    if not isinstance(depends_on, list) or not all(
        isinstance(d, str) for d in depends_on
    ):
        raise ApiError(400, "depends_on must be a list of job ids", "depends_on")
    run_at = None
    if data.get("run_at") is not None:
        run_at = selectors.parse_when(str(data["run_at"]))
        if run_at is None:
            raise ApiError(400, "run_at must be an ISO 8601 time", "run_at")
    delay = data.get("delay")
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, int | float)
    ):
        raise ApiError(400, "delay must be a number of seconds", "delay")
    retry = data.get("retry")
    if retry is not None and not isinstance(retry, dict):
        raise ApiError(400, "retry must be an object", "retry")
    record = services.job_submit(
        task=task,
        payload=data.get("payload"),
        queue=_optional_str(data, "queue"),
        priority=_optional_str(data, "priority"),
        delay=delay,
        run_at=run_at,
        depends_on=depends_on,
        allow_failure=bool(data.get("allow_failure", False)),
        idempotency_key=_optional_str(data, "idempotency_key"),
        retry=retry,
        timeout=data.get("timeout"),
        actor=request.user,
        origin=Origin.API,
    )
    return JsonResponse(selectors.job_json(record), status=201)


@endpoint("GET", "POST")
def jobs_collection(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        if not request.user.has_perm("jobs.operate"):
            raise ApiError(403, "this token's user may not submit jobs (viewer)")
        return _submit(request)
    job_filter = selectors.JobFilter.from_mapping(request.GET)
    if job_filter.problems:
        raise ApiError(400, "; ".join(job_filter.problems), "filter")
    page = Paginator(selectors.job_search(job_filter), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
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


def _bulk_reply(
    record: JobRecord, result: services.BulkResult, verb: str
) -> JsonResponse:
    record.refresh_from_db()
    if not result.done:
        raise ApiError(409, result.summary(verb), "status")
    return JsonResponse(
        {"message": result.summary(verb), "job": selectors.job_json(record)}
    )


@endpoint("POST", operate=True)
def job_retry(request: HttpRequest, job_id: str) -> JsonResponse:
    record = _job(job_id)
    reason = _optional_str(body(request), "reason") or ""
    result = services.job_retry(
        record=record, actor=request.user, origin=Origin.API, reason=reason
    )
    return _bulk_reply(record, result, "Retried")


@endpoint("POST", operate=True)
def job_cancel(request: HttpRequest, job_id: str) -> JsonResponse:
    record = _job(job_id)
    reason = _optional_str(body(request), "reason") or ""
    result = services.job_cancel(
        record=record, actor=request.user, origin=Origin.API, reason=reason
    )
    return _bulk_reply(record, result, "Canceled")


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
def queue_pause(request: HttpRequest, name: str) -> JsonResponse:
    reason = _optional_str(body(request), "reason") or ""
    state = services.queue_pause(
        name=_queue_name(name), actor=request.user, reason=reason, origin=Origin.API
    )
    return JsonResponse({"name": state.name, "paused": state.paused, "reason": reason})


@endpoint("POST", operate=True)
def queue_resume(request: HttpRequest, name: str) -> JsonResponse:
    reason = _optional_str(body(request), "reason") or ""
    state = services.queue_resume(
        name=_queue_name(name), actor=request.user, reason=reason, origin=Origin.API
    )
    return JsonResponse({"name": state.name, "paused": state.paused})


def schema(request: HttpRequest) -> JsonResponse:
    from jobs.openapi import document

    return JsonResponse(document())
