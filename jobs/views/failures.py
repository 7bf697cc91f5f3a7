"""Failures: dead and retrying jobs grouped by cause, with actions per group."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from jobs import services
from jobs.selectors import failures, history
from jobs.views.jobs import apply_bulk

#: The event the group actions fire so that the board re-reads at once.
CHANGED = "failures-changed"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def failure_groups(request: HtmxHttpRequest) -> HttpResponse:
    template = "jobs/failures.html"
    if request.htmx and not request.htmx.boosted:
        template += "#groups"
    return render(request, template, {"board": failures.failure_board()})


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def group_retry(request: HtmxHttpRequest, fingerprint: str) -> HttpResponse:
    job_filter = failures.failure_group_filter(
        fingerprint, request.POST.get("task", "")
    )
    apply_bulk(request, "retry", job_filter, _target(job_filter))
    return _done(request)


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def group_discard(request: HtmxHttpRequest, fingerprint: str) -> HttpResponse:
    job_filter = failures.failure_group_filter(
        fingerprint, request.POST.get("task", "")
    )
    if request.POST.get("confirm") != "yes":
        # Without JavaScript there was no hx-confirm: ask here, with the count.
        count = history.job_count(job_filter, limit=services.BULK_CAP)
        if count:
            return render(
                request,
                "jobs/failures.html",
                {
                    "confirm": job_filter,
                    "count": count,
                    "key": fingerprint,
                    "bulk_cap": services.BULK_CAP,
                },
            )
    apply_bulk(request, "delete", job_filter, _target(job_filter))
    return _done(request)


def _target(job_filter: history.JobFilter) -> str:
    return f"dead jobs in {failures.failure_group_label(job_filter)}"


def _done(request: HtmxHttpRequest) -> HttpResponse:
    """HTMX: the message, and an event that refreshes the board; else redirect."""
    if not request.htmx:
        return redirect("jobs:failures")
    response = render(request, "jobs/failures.html#flash")
    return trigger_client_event(response, CHANGED)
