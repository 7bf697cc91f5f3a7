"""The Jobs list: search over the durable history, and bulk actions on a filter."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import services
from jobs.models import JobRecord, Origin
from jobs.selectors import history
from jobs.selectors.history import JobFilter

PAGE_SIZE = 50
#: action -> (service, verb of its summary message)
BULK_ACTIONS: dict[str, tuple[Callable[..., services.BulkResult], str]] = {
    "retry": (services.jobs_retry, "Retried"),
    "cancel": (services.jobs_cancel, "Canceled"),
    "delete": (services.jobs_delete, "Deleted"),
}
#: Actions that destroy history ask first, stating how many jobs they touch.
DESTRUCTIVE = {"delete"}


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    job_filter = JobFilter.from_mapping(request.GET)
    for problem in job_filter.problems:
        messages.warning(request, problem)
    count = history.job_count(job_filter)
    page = history.job_page(
        job_filter, request.GET.get("page"), count=count, per_page=PAGE_SIZE
    )
    return render(
        request,
        "jobs/job_list.html",
        {
            "page": page,
            "filter": job_filter,
            "count": count,
            "bulk_cap": services.BULK_CAP,
            "statuses": JobRecord.Status.choices,
            "queues": settings.JOB_QUEUES,
        },
    )


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def job_bulk(request: HttpRequest) -> HttpResponse:
    """Re-run the posted filter server-side and act on every match (capped)."""
    job_filter = JobFilter.from_mapping(request.POST)
    back = f"{reverse('jobs:jobs')}?{job_filter.as_querystring()}"
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS or job_filter.problems:
        # A dropped filter field would widen the selection: refuse instead.
        for problem in job_filter.problems or [f"unknown action {action!r}"]:
            messages.error(request, f"{problem}; nothing done")
        return redirect(back)
    if needs_confirmation(request, action, job_filter):
        count = history.job_count(job_filter, limit=services.BULK_CAP)
        return render(
            request,
            "jobs/job_list.html",
            {
                "confirm": action,
                "filter": job_filter,
                "count": count,
                "bulk_cap": services.BULK_CAP,
                "back": back,
            },
        )
    apply_bulk(request, action, job_filter, f"jobs matching {job_filter.as_text()}")
    return redirect(back)


def needs_confirmation(
    request: HttpRequest, action: str, job_filter: JobFilter
) -> bool:
    return (
        action in DESTRUCTIVE
        and request.POST.get("confirm") != "yes"
        and history.job_search(job_filter).exists()
    )


def apply_bulk(
    request: HttpRequest, action: str, job_filter: JobFilter, target: str
) -> None:
    """Run one bulk service over the jobs a filter matches now, and say what
    happened; an empty selection does nothing and leaves no audit row."""
    if not history.job_search(job_filter).exists():
        messages.info(request, "No jobs match; nothing done")
        return
    service, verb = BULK_ACTIONS[action]
    result = service(
        ids=history.job_ids(job_filter, limit=services.BULK_CAP),
        actor=request.user,
        origin=Origin.WEB,
        target=target,
    )
    messages.success(request, result.summary(verb))
