"""Reads. Each screen family has a module; nothing here writes."""

from jobs.selectors.history import (
    JobFilter,
    TimelineEntry,
    attempts,
    job_json,
    job_search,
    parse_when,
    timeline,
)

__all__ = [
    "JobFilter",
    "TimelineEntry",
    "attempts",
    "job_json",
    "job_search",
    "parse_when",
    "timeline",
]
