"""The job page: everything about one job, live while it runs, and its actions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseStopPolling,
    trigger_client_event,
)
from django_htmx.middleware import HtmxDetails

from jobs import services
from jobs.models import JobRecord, Origin
from jobs.selectors.job_page import JobPage, job_page

TEMPLATE = "jobs/job_detail.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _page(job_id: str) -> JobPage:
    page = job_page(job_id)
    if page is None:
        raise Http404(f"No job with id {job_id!r}.")
    return page


def _record(job_id: str) -> JobRecord:
    record = JobRecord.objects.filter(pk=job_id).first()
    if record is None:
        raise Http404(f"No job with id {job_id!r}.")
    return record


def _back(request: HtmxHttpRequest, job_id: str) -> str:
    """Where a no-JS action returns: a safe `next` (the scheduled list), else
    the job page."""
    wanted = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("jobs:job", args=[job_id])


def _acted(
    request: HtmxHttpRequest, job_id: str, text: str, done: bool
) -> HttpResponse:
    """Say what happened; HTMX gets the refreshed page parts, others a redirect."""
    messages.add_message(request, messages.SUCCESS if done else messages.WARNING, text)
    if not request.htmx:
        return redirect(_back(request, job_id))
    response = render(
        request, f"{TEMPLATE}#live", {"page": _page(job_id), "seen": "", "acted": True}
    )
    return trigger_client_event(response, "jobs-changed")


@login_required
def job_detail(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    return render(request, TEMPLATE, {"page": _page(job_id)})


@login_required
def job_live(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """Polled every 2 s: status, timings and progress; the slower parts only
    when they changed since `seen`. Status 286 once final stops the polling."""
    page = job_page(job_id)
    if page is None and request.htmx:  # deleted while watched: stop, say so
        return HttpResponseStopPolling(render_to_string(f"{TEMPLATE}#gone"))
    if page is None:
        raise Http404(f"No job with id {job_id!r}.")
    response = render(
        request, f"{TEMPLATE}#live", {"page": page, "seen": request.GET.get("seen")}
    )
    if page.job.is_final:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def job_action(request: HtmxHttpRequest, job_id: str, action: str) -> HttpResponse:
    """Retry or cancel (the URL names it) from the job page's buttons."""
    result = services.job_act(
        action=action, record=_record(job_id), actor=request.user, origin=Origin.WEB
    )
    verb = services.JOB_ACTIONS[action].verb
    return _acted(request, job_id, result.summary(verb), bool(result.done))


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def job_run_now(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    moved = services.job_run_now(
        record=_record(job_id), actor=request.user, origin=Origin.WEB
    )
    text = (
        f"Job {job_id} moved to the front of its queue."
        if moved
        else f"Job {job_id} not moved: it is no longer waiting for a time."
    )
    return _acted(request, job_id, text, moved)


@login_required
@permission_required("jobs.operate", raise_exception=True)
@require_POST
def job_delete(request: HtmxHttpRequest, job_id: str) -> HttpResponse:
    """Destructive: only with the confirmation box ticked (no JS needed)."""
    record = _record(job_id)
    if request.POST.get("confirm") != "yes":
        messages.warning(request, "Nothing deleted: tick the box to confirm.")
        return redirect("jobs:job", job_id=record.pk)
    result = services.jobs_delete(
        ids=[record.pk], actor=request.user, origin=Origin.WEB, target=f"job {job_id}"
    )
    if not result.done:
        return _acted(request, job_id, result.summary("Deleted"), False)
    messages.success(request, result.summary("Deleted"))
    if request.htmx:
        return HttpResponseClientRedirect(reverse("jobs:jobs"))
    return redirect("jobs:jobs")
