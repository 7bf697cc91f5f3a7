"""Failures: dead and retrying jobs grouped by cause, with actions per group."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from jobs import services
from jobs.selectors import failures, history
from jobs.views.jobs import Asking, apply_bulk, ask_confirmation, confirmation_problem
from jobs.views.overview import HtmxHttpRequest

#: The event the group actions fire so that the board re-reads at once.
CHANGED = "failures-changed"


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
    return _group_action(request, fingerprint, "retry", "jobs:failures-retry")


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def group_discard(request: HtmxHttpRequest, fingerprint: str) -> HttpResponse:
    return _group_action(request, fingerprint, "delete", "jobs:failures-discard")


def _group_action(
    request: HtmxHttpRequest, fingerprint: str, action: str, url_name: str
) -> HttpResponse:
    """Act on a group's dead jobs once the operator has confirmed their exact
    count, through the Jobs screen's one confirmation."""
    job_filter = failures.failure_group_filter(
        fingerprint, request.POST.get("task", "")
    )
    count = history.job_count(job_filter, limit=services.BULK_CAP)
    problem = confirmation_problem(request, count) if count else None
    if problem is not None:
        asking = Asking(
            action,
            job_filter,
            count,
            post_to=reverse(url_name, args=[fingerprint]),
            back=reverse("jobs:failures"),
            scope=f"— the dead jobs of {failures.failure_group_label(job_filter)}",
        )
        return ask_confirmation(request, asking, problem)
    apply_bulk(request, action, job_filter, _target(job_filter))
    return _done(request)


def _target(job_filter: history.JobFilter) -> str:
    return f"dead jobs in {failures.failure_group_label(job_filter)}"


def _done(request: HtmxHttpRequest) -> HttpResponse:
    """HTMX: the message, and an event that refreshes the board; else redirect."""
    if not request.htmx:
        return redirect("jobs:failures")
    response = render(request, "jobs/failures.html#flash")
    return trigger_client_event(response, CHANGED)
