"""django-rq's side of /metrics."""

from __future__ import annotations

from contextlib import suppress

from django_rq.contrib.prometheus import RQCollector
from prometheus_client import REGISTRY


def forget_django_rq_summary() -> None:
    """django-rq registers, as it is imported, a summary named like a counter
    (rq_request_processing_seconds_total, always 0: its collector is not ours)
    in the default registry, which `promtool check metrics` rejects."""
    with suppress(KeyError):  # already gone
        REGISTRY.unregister(RQCollector.summary)
