"""The workers screen: live workers and the ones that died in the last hour."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from jobs.selectors.workers import worker_board
from jobs.views.overview import HtmxHttpRequest


@login_required
def worker_list(request: HtmxHttpRequest) -> HttpResponse:
    live_only = request.htmx and request.htmx.target == "workers-live"
    template = "jobs/workers.html#live" if live_only else "jobs/workers.html"
    return render(
        request, template, {"board": worker_board(), "queues": settings.JOB_QUEUES}
    )
