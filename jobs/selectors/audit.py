"""Reads for the Operator log: who did what, to how many jobs, from where."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet

from jobs.models import OperatorAction, Origin
from jobs.services.validation import text_problem


@dataclass
class ActionFilter:
    """Filter over the operator log, built from a query string."""

    actor: str = ""
    action: str = ""
    origin: str = ""
    problems: list[str] = field(default_factory=list)

    FIELDS = ("actor", "action", "origin")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ActionFilter:
        """Malformed values are dropped and listed in `problems`."""
        found = cls()
        for name in ("actor", "action"):
            raw = str(data.get(name) or "").strip()
            problem = text_problem(raw) if raw else None
            if problem:
                found.problems.append(f"{name}: {problem}; ignored")
            else:
                setattr(found, name, raw)
        origin = str(data.get("origin") or "").strip()
        if origin and origin not in Origin.values:
            found.problems.append(f"unknown origin {origin!r} ignored")
        else:
            found.origin = origin
        return found

    def apply(self, rows: QuerySet[OperatorAction]) -> QuerySet[OperatorAction]:
        if self.actor:
            rows = rows.filter(actor_name__iexact=self.actor)
        if self.action:
            rows = rows.filter(action=self.action)
        if self.origin:
            rows = rows.filter(origin=self.origin)
        return rows

    def as_query(self) -> dict[str, str]:
        return {
            name: getattr(self, name) for name in self.FIELDS if getattr(self, name)
        }

    def as_querystring(self) -> str:
        return urlencode(self.as_query())


def operator_actions(action_filter: ActionFilter) -> QuerySet[OperatorAction]:
    """Newest first (id breaks ties between actions in the same instant)."""
    return action_filter.apply(OperatorAction.objects.all()).order_by("-at", "-id")


def action_names() -> list[str]:
    """Every kind of action recorded so far, for the filter's choices."""
    return list(
        OperatorAction.objects.order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )


def actor_names() -> list[str]:
    return list(
        OperatorAction.objects.order_by("actor_name")
        .values_list("actor_name", flat=True)
        .distinct()
    )
