"""What every console page shows in its top bar."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from jobs import queueing


def console(request: HttpRequest) -> dict[str, Any]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"redis_ok": queueing.ping()}
