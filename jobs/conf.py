"""The app's settings and the defaults the app supplies itself.

A host project sets `REDIS_URL` and, if it wants more than the `default`
queue, `JOB_QUEUES`; everything else has a default here. The defaults are put
on Django's settings object when the app is ready (as django-appconf does),
because django-rq reads `RQ_QUEUES` and `RQ` from the settings object itself,
at call time, in `manage.py rqworker` and `rqscheduler` as anywhere else: the
app derives both from `REDIS_URL` and `JOB_QUEUES` unless the host sets them.
What the host sets is validated by the system checks in jobs/checks.py, never
silently replaced.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

#: Settings a host may leave out, with the value the app uses then.
DEFAULTS: dict[str, Any] = {
    "JOB_QUEUES": ["default"],
    "JOB_TASK_MODULES": [],
    "REDIS_SOCKET_TIMEOUT": 5,
    "REDIS_STARTUP_WAIT": 30,
    "METRICS_TOKEN": "",
    "ALERT_WEBHOOK_URL": "",
    "ALERT_EMAILS": [],
}

#: django-rq's `RQ` keys the app's jobs depend on: any other value would run
#: them with a worker, job class or serializer that does not understand them.
RQ_REQUIRED: dict[str, tuple[str, ...]] = {
    "WORKER_CLASS": ("jobs.workers.ConsoleWorker", "jobs.workers.ConsoleSimpleWorker"),
    "JOB_CLASS": ("jobs.queueing.ConsoleJob",),
    "SERIALIZER": ("rq.serializers.JSONSerializer",),
    "SCHEDULER_CLASS": ("jobs.schedules.ConsoleScheduler",),
}
#: Submissions go to Redis on commit through the app's own outbox, so
#: django-rq must not hold them back a second time.
RQ_DEFAULTS: dict[str, Any] = {
    **{key: values[0] for key, values in RQ_REQUIRED.items()},
    "COMMIT_MODE": "auto",
}

#: Each logical queue is three lanes in Redis (see jobs/queueing.py).
LANE_SUFFIXES = (":high", "", ":low")


def lanes(queue: str) -> list[str]:
    return [f"{queue}{suffix}" for suffix in LANE_SUFFIXES]


def rq_queues(redis_url: str, queues: list[str], socket_timeout: float) -> dict:
    """django-rq's RQ_QUEUES for these queues: every lane on one server."""
    return {
        lane: {
            "URL": redis_url,
            "DEFAULT_TIMEOUT": 180,
            "SOCKET_TIMEOUT": socket_timeout,
            "SOCKET_CONNECT_TIMEOUT": socket_timeout,
            "HEALTH_CHECK_INTERVAL": 10,
        }
        for queue in queues
        for lane in lanes(queue)
    }


def get(name: str) -> Any:
    """A setting of the app's: the host's value, else the app's default."""
    return getattr(settings, name, DEFAULTS.get(name))


def apply_defaults() -> None:
    """Fill in what the host left out (called by JobsConfig.ready)."""
    for name, value in DEFAULTS.items():
        if not hasattr(settings, name):
            setattr(settings, name, copy.deepcopy(value))
    settings.RQ = {**RQ_DEFAULTS, **getattr(settings, "RQ", {})}
    url = getattr(settings, "REDIS_URL", None)
    queues = settings.JOB_QUEUES
    derivable = isinstance(url, str) and url and isinstance(queues, list | tuple)
    if derivable and not hasattr(settings, "RQ_QUEUES"):
        # Wrong values are left for the checks (jobs.E002, E003) to report.
        names = [q for q in queues if isinstance(q, str)]
        settings.RQ_QUEUES = rq_queues(str(url), names, get("REDIS_SOCKET_TIMEOUT"))


def redacted(url: str) -> str:
    """The URL with its password replaced, safe to print and log."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def explain_redis_error(exc: Exception) -> str:
    """One line naming REDIS_URL (without its password) and what went wrong."""
    url = redacted(settings.REDIS_URL)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "password" in lowered or "auth" in lowered or "wrongpass" in lowered:
        return f"REDIS_URL: authentication failed for {url} ({text})"
    return f"REDIS_URL: cannot reach the Redis server at {url} ({text})"
