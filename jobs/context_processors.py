"""What every console page shows in its top bar."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from jobs.backend import connect
from jobs.models import Alert


def console(request: HttpRequest) -> dict[str, Any]:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    open_alerts = list(
        Alert.objects.filter(resolved_at__isnull=True).select_related("rule")[:5]
    )
    return {"redis_ok": connect.ping(), "open_alerts": open_alerts}
