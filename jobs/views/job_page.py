"""The job page: everything about one job, live while it runs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from jobs import selectors
from jobs.models import JobRecord


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


@login_required
def job_live(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("not built yet")


@login_required
def job_retry(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("not built yet")


@login_required
def job_cancel(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("not built yet")


@login_required
def job_delete(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("not built yet")


@login_required
def job_run_now(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    raise Http404("not built yet")
