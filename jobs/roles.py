"""The two roles: Viewers see everything; Operators may also act (jobs.operate)."""

from __future__ import annotations

from typing import Any

VIEWERS = "Viewers"
OPERATORS = "Operators"
VIEW_MODELS = [
    "jobrecord",
    "attempt",
    "jobevent",
    "queuestate",
    "operatoraction",
    "jobdependency",
]


def sync_roles(group_model: Any, permission_model: Any) -> None:
    """Create or complete both groups; takes the models so migrations can call it."""
    view = list(
        permission_model.objects.filter(
            content_type__app_label="jobs",
            codename__in=[f"view_{m}" for m in VIEW_MODELS],
        )
    )
    operate = permission_model.objects.get(
        content_type__app_label="jobs", codename="operate"
    )
    viewers, _ = group_model.objects.get_or_create(name=VIEWERS)
    viewers.permissions.add(*view)
    operators, _ = group_model.objects.get_or_create(name=OPERATORS)
    operators.permissions.add(*view, operate)
