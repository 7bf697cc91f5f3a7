"""Job list and job page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from jobs import selectors
from jobs.models import JobRecord

PAGE_SIZE = 50


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    job_filter = selectors.JobFilter.from_mapping(request.GET)
    for problem in job_filter.problems:
        messages.warning(request, problem)
    page = Paginator(selectors.job_search(job_filter), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "jobs/job_list.html",
        {"page": page, "filter": job_filter, "statuses": JobRecord.Status.choices},
    )


@login_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    record = get_object_or_404(
        JobRecord.objects.select_related("submitted_by"), pk=job_id
    )
    return render(
        request,
        "jobs/job_detail.html",
        {
            "job": record,
            "attempts": selectors.attempts(record),
            "timeline": selectors.timeline(record),
        },
    )
