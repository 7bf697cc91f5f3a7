"""Data the migrations create, in one place so tests can recreate it."""

from __future__ import annotations

from typing import Any

#: name, kind, threshold, window in seconds
DEFAULT_ALERT_RULES = [
    ("Queue backing up", "queue_depth", 1000, 300),
    ("Oldest job waiting too long", "oldest_wait", 300, 300),
    ("Failure spike", "failure_rate", 20, 300),
    ("No live worker", "no_worker", 0, 60),
    ("Dead letters growing", "dead_growth", 10, 600),
    ("Scheduler down", "scheduler_down", 120, 300),
]


def ensure_default_alert_rules(rule_model: Any) -> None:
    for name, kind, threshold, window in DEFAULT_ALERT_RULES:
        rule_model.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "threshold": threshold, "window_seconds": window},
        )
