"""Who may see the console: the viewer permission, checked for every page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

#: An ordinary Django permission, granted by the Viewers and Operators
#: groups (jobs.roles) or by the host to any group or user of its own.
VIEW_PERMISSION = "jobs.view_jobrecord"


def viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous visitors go to the host's LOGIN_URL; a signed-in user without
    the viewer permission gets 403, not a page of the job history."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied("the jobs console needs the viewer permission")
        return view(request, *args, **kwargs)

    return guarded
