"""The workers screen: live workers and the ones that died in the last hour."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs import services
from jobs.backend.errors import BackendError
from jobs.models import Origin
from jobs.selectors.workers import worker_board
from jobs.services.validation import MAX_REASON_LENGTH, UnknownReference, text_problem
from jobs.views.overview import HtmxHttpRequest


@login_required
def worker_list(request: HtmxHttpRequest) -> HttpResponse:
    live_only = request.htmx and request.htmx.target == "workers-live"
    template = "jobs/workers.html#live" if live_only else "jobs/workers.html"
    queue = only_queue(request)
    context = {
        "board": worker_board(queue),
        "queue": queue,
        "queues": settings.JOB_QUEUES,
    }
    return render(request, template, context)


def only_queue(request: HttpRequest) -> str:
    """`?queue=NAME`, the list behind a queue's count; "" (every queue) for a
    name that is not configured."""
    name = request.GET.get("queue", "")
    return name if name in settings.JOB_QUEUES else ""


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_http_methods(["GET", "POST"])
def worker_stop(request: HttpRequest, name: str) -> HttpResponse:
    """GET: what stopping this worker means, and the button; POST: ask it."""
    board = worker_board()
    if not board.redis_ok:
        messages.error(request, "Nothing done: Redis is unavailable.")
        return redirect("jobs:workers")
    found = {w.name: w for w in board.alive}.get(name)
    if found is None:
        context = {"name": name}
        return render(request, "jobs/worker_stop.html", context, status=404)
    if request.method == "GET":
        return render(request, "jobs/worker_stop.html", {"worker": found})
    reason = request.POST.get("reason", "").strip()
    problem = text_problem(reason, max_length=MAX_REASON_LENGTH) if reason else None
    if problem:
        messages.warning(request, f"Nothing done: the reason {problem}.")
        return render(request, "jobs/worker_stop.html", {"worker": found}, status=400)
    try:
        asked = services.worker_stop(
            name=name, actor=request.user, origin=Origin.WEB, reason=reason
        )
    except UnknownReference:
        messages.info(request, f"Nothing done: {name} is no longer running.")
    except services.InvalidInput as exc:  # a name a foreign worker wrote
        messages.warning(request, f"Nothing done: {exc}")
    except BackendError as exc:
        messages.error(request, f"Nothing done: {exc}")
    else:
        if asked:
            finishing = (
                f"finishes the {found.slots_busy} it runs, then exits"
                if found.slots_busy
                else "runs none now: it exits"
            )
            messages.success(
                request, f"Asked {name} to stop: it takes no new job, {finishing}."
            )
        else:
            messages.info(request, f"Nothing done: {name} is stopping already.")
    return redirect("jobs:workers")
