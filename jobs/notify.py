"""Alert notifications: a log line always, a webhook and e-mail when set.

Deliveries run on a background thread with a timeout and retries with
backoff, so a slow or failing endpoint never blocks or crashes the monitor.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from jobs.models import Alert

log = logging.getLogger("jobs.alerts")
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_ATTEMPTS = 4
_outbox: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
_sender: threading.Thread | None = None


def payload(alert: Alert, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "alert": alert.pk,
        "rule": alert.rule.name,
        "kind": alert.rule.kind,
        "subject": alert.subject,
        "summary": alert.summary,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "detail": alert.detail,
    }


def alert_changed(alert: Alert, event: str) -> None:
    body = payload(alert, event)
    log.warning(f"alert {event}: {alert.summary}", extra={"alert": body})
    if settings.ALERT_WEBHOOK_URL or settings.ALERT_EMAILS:
        _start_sender()
        try:
            _outbox.put_nowait(body)
        except queue.Full:
            log.error("alert notification dropped: the outbox is full")


def _start_sender() -> None:
    global _sender
    if _sender is None or not _sender.is_alive():
        _sender = threading.Thread(
            target=_send_forever, name="alert-sender", daemon=True
        )
        _sender.start()


def _send_forever() -> None:
    while True:
        body = _outbox.get()
        try:
            deliver(body)
        except Exception:  # noqa: BLE001 - a notifier must never die
            log.exception("alert notification failed")
        finally:
            _outbox.task_done()


def deliver(body: dict[str, Any]) -> None:
    if settings.ALERT_WEBHOOK_URL:
        post_webhook(settings.ALERT_WEBHOOK_URL, body)
    if settings.ALERT_EMAILS:
        send_mail(
            subject=f"[jobs] {body['event']}: {body['summary']}"[:200],
            message=json.dumps(body, indent=2, default=str),
            from_email=None,
            recipient_list=settings.ALERT_EMAILS,
            fail_silently=False,
        )


def post_webhook(
    url: str,
    body: dict[str, Any],
    attempts: int = WEBHOOK_ATTEMPTS,
    backoff: float = 1.0,
) -> bool:
    data = json.dumps(body, default=str).encode()
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "jobs-console"},
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as reply:
                if 200 <= reply.status < 300:
                    return True
        except OSError as exc:
            log.warning(
                "webhook delivery failed",
                extra={"attempt": attempt, "error": str(exc), "url": url},
            )
        time.sleep(backoff * 2 ** (attempt - 1))
    log.error("webhook gave up", extra={"url": url, "attempts": attempts})
    return False


def flush(timeout: float = 10.0) -> None:
    """Wait until queued notifications were tried (tests, shutdown)."""
    deadline = time.monotonic() + timeout
    while _outbox.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.05)
