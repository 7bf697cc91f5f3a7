"""The Operator log: every action an operator took, from any front door."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.models import Origin
from jobs.selectors import audit

PAGE_SIZE = 50


@login_required
def operator_log(request: HttpRequest) -> HttpResponse:
    action_filter = audit.ActionFilter.from_mapping(request.GET)
    for problem in action_filter.problems:
        messages.warning(request, problem)
    page = Paginator(audit.operator_actions(action_filter), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "jobs/operator_log.html",
        {
            "page": page,
            "filter": action_filter,
            "actions": audit.action_names(),
            "actors": audit.actor_names(),
            "origins": Origin.choices,
        },
    )
