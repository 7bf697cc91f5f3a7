"""The overview: headline numbers, the queues table and charts over time."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from jobs import charts
from jobs.selectors import overview as selectors
from jobs.selectors.figures import DEFINITIONS


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", "hour")
    return window if window in selectors.WINDOWS else "hour"


def _charts(window: str) -> dict[str, object]:
    data = selectors.chart_data(window)
    return {
        "window": window,
        "chart_data": data,
        "charts": charts.overview_charts(data),
    }


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    context = {**_live(), **_charts(_window(request))}
    return render(request, "jobs/overview.html", context)


def _live() -> dict[str, object]:
    return {"overview": selectors.overview(), "defs": DEFINITIONS}


@login_required
def overview_live(request: HttpRequest) -> HttpResponse:
    """The live panel (headline and queues), or the charts with ?panel=charts."""
    if request.GET.get("panel") == "charts":
        return render(request, "jobs/overview.html#charts", _charts(_window(request)))
    return render(request, "jobs/overview.html#live", _live())
