"""The workers screen: live workers and the ones that died in the last hour."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.selectors.workers import worker_board
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
