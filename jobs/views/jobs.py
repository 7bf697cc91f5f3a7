"""The Jobs list: search over the durable history, and bulk actions on a filter."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from jobs import services
from jobs.models import JobRecord, Origin
from jobs.selectors import history
from jobs.selectors.history import JobFilter
from jobs.views.overview import HtmxHttpRequest

PAGE_SIZE = 50
#: What each bulk action does, said on its confirmation. Every bulk action
#: asks first: a filter (or none) can match the whole history.
CONSEQUENCES = {
    "retry": "Dead and canceled jobs run again, each with a new round of "
    "attempts; jobs in other states are skipped and counted.",
    "cancel": "Waiting jobs are canceled and never run; running jobs are "
    "stopped and canceled (they can be retried later); finished jobs are skipped "
    "and counted.",
    "delete": "Jobs are removed with their attempts and timelines; running "
    "jobs are skipped. This cannot be undone.",
}


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
def job_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Re-run the posted filter server-side and act on every match (capped),
    once the operator has confirmed the count they were shown."""
    job_filter = JobFilter.from_mapping(request.POST)
    query = job_filter.as_querystring()
    back = reverse("jobs:jobs") + (f"?{query}" if query else "")
    action = request.POST.get("action", "")
    if action not in services.JOB_ACTIONS or job_filter.problems:
        # A dropped filter field would widen the selection: refuse instead.
        for problem in job_filter.problems or [f"unknown action {action!r}"]:
            messages.error(request, f"{problem}; nothing done")
        return _back(request, back)
    count = history.job_count(job_filter, limit=services.BULK_CAP)
    if not count:
        messages.info(request, "No jobs match; nothing done")
        return _back(request, back)
    unconfirmed = confirmation_problem(request, count)
    if unconfirmed is not None:
        return ask_confirmation(
            request,
            Asking(action, job_filter, count, reverse("jobs:jobs-bulk"), back),
            unconfirmed,
        )
    apply_bulk(request, action, job_filter, f"jobs matching {job_filter.as_text()}")
    return _back(request, back)


def confirmation_problem(request: HttpRequest, count: history.MatchCount) -> str | None:
    """None when the operator confirmed at least as many jobs as match now;
    else why to ask (empty the first time). More matches than were confirmed
    (new dead jobs, say) means asking again with the new count."""
    raw = request.POST.get("expected", "")
    if request.POST.get("confirm") != "yes" or not raw.isdigit():
        return ""
    if count.value > int(raw):
        return (
            f"Nothing done: {count.label} jobs match now, not the {int(raw):,} "
            "you confirmed. Check the count and confirm again."
        )
    return None


@dataclass(frozen=True)
class Asking:
    """What a bulk confirmation asks about: the action, the jobs (as a filter,
    or a `scope` sentence such as a failure group), where "yes" posts, and
    where "no" goes back to."""

    action: str
    job_filter: JobFilter
    count: history.MatchCount
    post_to: str
    back: str
    scope: str = ""


def ask_confirmation(
    request: HtmxHttpRequest, asking: Asking, problem: str
) -> HttpResponse:
    """The one confirmation of every bulk action in the console (Jobs and
    Failures): a page without JS, the panel in place of the form with HTMX."""
    context = {
        "confirm": asking.action,
        "verb": asking.action.capitalize(),
        "consequence": CONSEQUENCES[asking.action],
        "problem": problem,
        "filter": asking.job_filter,
        "count": asking.count,
        "scope": asking.scope,
        "post_to": asking.post_to,
        "bulk_cap": services.BULK_CAP,
        "back": asking.back,
    }
    template = "jobs/job_list.html#confirm" if request.htmx else "jobs/job_list.html"
    return render(request, template, context)


def _back(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """Back to the list (HTMX: a full reload, as every row may have changed)."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def apply_bulk(
    request: HttpRequest, action: str, job_filter: JobFilter, target: str
) -> None:
    """Run one bulk service over the jobs a filter matches now, and say what
    happened; an empty selection does nothing and leaves no audit row."""
    if not history.job_search(job_filter).exists():
        messages.info(request, "No jobs match; nothing done")
        return
    result = services.jobs_act(
        action=action,
        ids=history.job_ids(job_filter, limit=services.BULK_CAP),
        actor=request.user,
        origin=Origin.WEB,
        target=target,
    )
    messages.success(request, result.summary(services.JOB_ACTIONS[action].verb))
