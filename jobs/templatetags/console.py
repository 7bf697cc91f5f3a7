"""Small display filters for the console's templates, and the partial tags on
Django 5.2."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import django
from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

if django.VERSION < (6, 0):
    # Django 6.0 has {% partialdef %} and {% partial %} built in, and warns when
    # django-template-partials' `partials` library is loaded. On 5.2 this
    # library lends its tags, so the same templates load only `console`.
    from template_partials.templatetags import partials

    register.tag("partialdef", partials.partialdef_func)
    register.tag("partial", partials.partial_func)


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
