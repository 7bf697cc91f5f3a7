"""Small display filters for the console's templates."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from jobs.models import JobRecord
from jobs.selectors.history import Round, job_round

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """JSON as an operator would paste it back (not Python's repr)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def ago(value: datetime | None) -> str:
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value).split(',')[0]} ago"


@register.filter
def attempt_round(record: JobRecord) -> Round:
    """`{% with r=job|attempt_round %}`: attempts within the current round."""
    return job_round(record)


@register.filter
def error_is_outcome(record: JobRecord) -> bool:
    """The last error is why the job stands where it is (dead, or waiting to
    retry); on any other status it is an earlier failure, not the outcome."""
    return record.status in (JobRecord.Status.DEAD, JobRecord.Status.RETRYING)


@register.simple_tag(takes_context=True)
def console_status(context: template.Context) -> str:
    """Put the top bar's Redis status and open alerts into the page's context.

    A tag rather than a context processor: the app's base template then
    works in a host project with no line added to its TEMPLATES setting.
    """
    from jobs.context_processors import console

    request = context.get("request")
    if request is not None:
        for key, value in console(request).items():
            context[key] = value
    return ""
