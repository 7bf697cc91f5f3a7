"""Job list and job page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

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
def job_bulk(request: HttpRequest) -> HttpResponse:
    raise Http404("not built yet")
