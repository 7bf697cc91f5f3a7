"""Reads for the Alerts screen: open alerts first, then the history."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.models import Alert, AlertRule


def open_alerts() -> QuerySet[Alert]:
    return Alert.objects.filter(resolved_at__isnull=True).select_related("rule")


def alert_history() -> QuerySet[Alert]:
    return Alert.objects.filter(resolved_at__isnull=False).select_related("rule")


def alert_rules() -> QuerySet[AlertRule]:
    return AlertRule.objects.all()
