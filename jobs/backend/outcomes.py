"""What an attempt ended with: the failure recorded, the result summarised."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobs import events

#: Results larger than this are summarised in the history, not copied whole.
RESULT_SUMMARY_BYTES = 8192


@dataclass
class Failure:
    outcome: events.Kind  # FAILED or LOST
    exc_type: str
    message: str
    traceback: str
    names: list[str] = field(default_factory=list)
    retry_at: float | None = None
    delay: float | None = None


#: The exception type an attempt stopped by an operator's cancel is recorded with.
CANCELED_TYPE = "JobCanceled"


def canceled_failure(by: str, detail: str = "") -> Failure:
    """The outcome of an attempt stopped by an operator's cancel."""
    return Failure(
        outcome=events.Kind.FAILED,
        exc_type=CANCELED_TYPE,
        message=f"stopped: canceled by {by}",
        traceback=detail,
    )


def exception_names(exc_type: type[BaseException]) -> list[str]:
    names: list[str] = []
    for cls in exc_type.__mro__:
        names.extend((cls.__name__, f"{cls.__module__}.{cls.__qualname__}"))
    return names


def summarise(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= RESULT_SUMMARY_BYTES:
        return json.loads(text)
    return {"truncated": True, "preview": text[:RESULT_SUMMARY_BYTES]}
