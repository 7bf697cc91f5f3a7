"""The Alerts screen: what is wrong now, what was wrong, and the rules."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.selectors import alerts as selectors

PAGE_SIZE = 50


@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    history = Paginator(selectors.alert_history(), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "jobs/alerts.html",
        {
            "open": selectors.open_alerts(),
            "history": history,
            "rules": selectors.alert_rules(),
        },
    )
