"""The queue page: depth by state, waiting jobs, pause, resume and empty."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from jobs import services
from jobs.backend.errors import BackendError
from jobs.models import Origin
from jobs.selectors import overview as selectors
from jobs.selectors.figures import DEFINITIONS
from jobs.services.validation import MAX_REASON_LENGTH, text_problem
from jobs.views.overview import HtmxHttpRequest


def _unknown(request: HtmxHttpRequest, name: str) -> HttpResponse:
    context = {"unknown": name, "known": settings.JOB_QUEUES}
    return render(request, "jobs/queue.html", context, status=404)


def _updated(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """After an action: the panel re-rendered in place, or back to the page."""
    if not request.htmx:
        return redirect("jobs:queue", name=name)
    page = selectors.queue_page(name)
    response = render(
        request, "jobs/queue.html#panel", {"page": page, "defs": DEFINITIONS}
    )
    return trigger_client_event(response, "queues-changed")


@login_required
def queue_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    if name not in settings.JOB_QUEUES:
        return _unknown(request, name)
    live_only = request.htmx and request.htmx.target == "queue-live"
    template = "jobs/queue.html#live" if live_only else "jobs/queue.html"
    context = {"page": selectors.queue_page(name), "defs": DEFINITIONS}
    return render(request, template, context)


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def queue_pause(request: HtmxHttpRequest, name: str) -> HttpResponse:
    if name not in settings.JOB_QUEUES:
        return _unknown(request, name)
    reason = request.POST.get("reason", "").strip()
    problem = text_problem(reason, max_length=MAX_REASON_LENGTH)
    if not reason or problem:
        messages.warning(
            request,
            f"Nothing done: the reason {problem}."
            if problem
            else "Nothing done: say why you pause the queue.",
        )
        return _updated(request, name)
    return _set_paused(request, name, reason)


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def queue_resume(request: HtmxHttpRequest, name: str) -> HttpResponse:
    if name not in settings.JOB_QUEUES:
        return _unknown(request, name)
    return _set_paused(request, name, None)


def _set_paused(
    request: HtmxHttpRequest, name: str, reason: str | None
) -> HttpResponse:
    """Pause (with the operator's reason) or resume (reason None) a queue."""
    verb = "Paused" if reason is not None else "Resumed"
    try:
        if reason is not None:
            services.queue_pause(
                name=name, actor=request.user, reason=reason, origin=Origin.WEB
            )
        else:
            services.queue_resume(name=name, actor=request.user, origin=Origin.WEB)
    except BackendError:
        messages.warning(request, _LATE_SYNC.format(verb=verb, name=name))
    else:
        effect = (
            "take no new jobs from it"
            if reason is not None
            else ("take jobs from it again")
        )
        messages.success(request, f"{verb} {name}: workers {effect}.")
    return _updated(request, name)


#: The database holds the pause; the monitor copies it to Redis when it returns.
_LATE_SYNC = (
    "{verb} {name} in the database; Redis is unavailable, so workers see it "
    "once Redis is back."
)


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def queue_empty(request: HtmxHttpRequest, name: str) -> HttpResponse:
    if name not in settings.JOB_QUEUES:
        return _unknown(request, name)
    _empty(request, name)
    return _updated(request, name)


def _empty(request: HtmxHttpRequest, name: str) -> None:
    """Cancel every waiting job, but only as many as the operator confirmed:
    if more arrived since the page was shown, ask again."""
    raw = request.POST.get("expected", "")
    expected = int(raw) if raw.isdigit() else None
    waiting = selectors.waiting_count(name)
    if request.POST.get("confirm") != "yes" or expected is None:
        messages.warning(request, "Nothing done: tick the box to confirm.")
    elif waiting is None:
        messages.error(request, "Nothing done: Redis is unavailable.")
    elif waiting == 0:
        messages.info(request, f"Nothing done: {name} has no waiting jobs.")
    elif waiting > expected:
        messages.warning(
            request,
            f"Nothing done: {name} now holds {waiting} waiting jobs, not the "
            f"{expected} you confirmed. Check the count and confirm again.",
        )
    else:
        result = services.queue_empty(name=name, actor=request.user, origin=Origin.WEB)
        messages.success(request, f"{result.summary('Canceled')} from {name}.")
