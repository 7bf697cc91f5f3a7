"""The scheduled screen: what runs later, with "run now" for operators."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from jobs.models import Origin, Schedule
from jobs.selectors import schedules as schedule_selectors
from jobs.selectors.scheduled import scheduled_list as read_scheduled
from jobs.services import schedules as schedule_services
from jobs.views.workers import only_queue

#: One Redis range read per queue lane; more rows than this is a search, not a glance.
LIMIT = 200


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def scheduled_list(request: HtmxHttpRequest) -> HttpResponse:
    queue = only_queue(request)
    queues = [queue] if queue else list(settings.JOB_QUEUES)
    listing = read_scheduled(queues, limit=LIMIT)
    template = "jobs/scheduled.html#table" if request.htmx else "jobs/scheduled.html"
    return render(
        request,
        template,
        {
            "listing": listing,
            "queue": queue,
            "schedules": schedule_selectors.schedules(),
        },
    )


def _schedule_action(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    if verb == "run-now":
        record = schedule_services.schedule_run_now(
            schedule=schedule, actor=request.user, origin=Origin.WEB
        )
        messages.success(
            request,
            f"Submitted {schedule.name} now as job {record.pk}; "
            "its next run is unchanged.",
        )
    else:
        schedule_services.schedule_set_enabled(
            schedule=schedule,
            enabled=verb == "enable",
            actor=request.user,
            origin=Origin.WEB,
        )
        messages.success(request, f"{verb.title()}d schedule {schedule.name}.")
    return redirect("jobs:scheduled")


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def schedule_enable(request: HttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, "enable")


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def schedule_disable(request: HttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, "disable")


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def schedule_run_now(request: HttpRequest, pk: int) -> HttpResponse:
    return _schedule_action(request, pk, "run-now")
