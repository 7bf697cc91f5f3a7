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
from dataclasses import dataclass
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
    # Redis Sentinel, the alternative to REDIS_URL (see RedisTarget below).
    "REDIS_SENTINELS": [],
    "REDIS_SENTINEL_MASTER": "",
    "REDIS_SENTINEL_PASSWORD": "",
    "REDIS_PASSWORD": "",
    "REDIS_DB": 0,
    # The process model of worker slots (jobs/slotprocs.py): a reused job
    # process is replaced after this many jobs or past this resident size.
    "JOB_PROCESS_MAX_JOBS": 1000,
    "JOB_PROCESS_MAX_MEMORY_MB": 256,
}

#: django-rq's `RQ` keys the app's jobs depend on: any other value would run
#: them with a worker, job class or serializer that does not understand them.
RQ_REQUIRED: dict[str, tuple[str, ...]] = {
    "WORKER_CLASS": (
        "jobs.backend.workers.ConsoleWorker",
        "jobs.backend.workers.ConsoleSimpleWorker",
    ),
    "JOB_CLASS": ("jobs.backend.queueing.ConsoleJob",),
    "SERIALIZER": ("rq.serializers.JSONSerializer",),
    "SCHEDULER_CLASS": ("jobs.processes.schedules.ConsoleScheduler",),
}
#: Submissions go to Redis on commit through the app's own outbox, so
#: django-rq must not hold them back a second time.
RQ_DEFAULTS: dict[str, Any] = {
    **{key: values[0] for key, values in RQ_REQUIRED.items()},
    "COMMIT_MODE": "auto",
}

#: Each logical queue is three lanes in Redis (see jobs/backend/queueing.py).
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


def rq_sentinel_queues(
    target: RedisTarget, queues: list[str], socket_timeout: float
) -> dict:
    """django-rq's RQ_QUEUES for these queues through Sentinel, in the keys
    django-rq's own get_redis_connection reads (rqworker, rqscheduler)."""
    return {
        lane: {
            "SENTINELS": [list(pair) for pair in target.sentinels],
            "MASTER_NAME": target.master,
            "PASSWORD": target.password or None,
            "DB": target.db,
            "SOCKET_TIMEOUT": socket_timeout,
            "SENTINEL_KWARGS": target.sentinel_kwargs(socket_timeout),
            "CONNECTION_KWARGS": {"socket_connect_timeout": socket_timeout},
            "DEFAULT_TIMEOUT": 180,
        }
        for queue in queues
        for lane in lanes(queue)
    }


# -- Redis Sentinel ------------------------------------------------------------


def parse_sentinels(value: Any) -> list[tuple[str, int]]:
    """`"h1:26379,h2:26379"`, or a list of such strings or (host, port)
    pairs, as (host, port) pairs. Raises ValueError saying what is wrong."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected 'host:port,host:port', got {value!r}")
    pairs = [_sentinel_pair(item) for item in items if item not in ("", " ")]
    if not pairs:
        raise ValueError(f"expected at least one host:port, got {value!r}")
    return pairs


def _sentinel_pair(item: Any) -> tuple[str, int]:
    if isinstance(item, str):
        host, sep, port = item.strip().rpartition(":")
        if not sep:
            raise ValueError(f"{item.strip()!r} has no port (expected host:port)")
    elif isinstance(item, list | tuple) and len(item) == 2:
        host, port = item
    else:
        raise ValueError(f"expected host:port, got {item!r}")
    host = str(host).strip().strip("[]")
    if not host:
        raise ValueError(f"{item!r} has an empty host")
    try:
        number = int(str(port).strip())
    except ValueError:
        raise ValueError(f"{item!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"{item!r}: port {number} is out of range")
    return host, number


@dataclass(frozen=True)
class RedisTarget:
    """Where the app's Redis is: one URL, or a Sentinel-monitored primary
    (`master`) found through `sentinels`. The primary's (and replicas')
    password is `password`; the sentinels' own is `sentinel_password`."""

    url: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    password: str = ""
    sentinel_password: str = ""
    db: int = 0

    @property
    def label(self) -> str:
        """A description safe to print: no password."""
        if not self.sentinels:
            return redacted(self.url)
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinel master {self.master!r} via {hosts}"

    @property
    def variable(self) -> str:
        return "REDIS_SENTINELS" if self.sentinels else "REDIS_URL"

    def sentinel_kwargs(self, timeout: float) -> dict[str, Any]:
        return {
            "password": self.sentinel_password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }


def redis_target() -> RedisTarget:
    """The app's Redis as settings say (checked by jobs.E002 and E020-E021:
    a value the checks refuse raises ValueError here)."""
    sentinels = get("REDIS_SENTINELS")
    if not sentinels:
        return RedisTarget(url=str(getattr(settings, "REDIS_URL", "") or ""))
    return RedisTarget(
        sentinels=tuple(parse_sentinels(sentinels)),
        master=str(get("REDIS_SENTINEL_MASTER") or ""),
        password=str(get("REDIS_PASSWORD") or ""),
        sentinel_password=str(get("REDIS_SENTINEL_PASSWORD") or ""),
        db=int(get("REDIS_DB") or 0),
    )


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
    if hasattr(settings, "RQ_QUEUES") or not isinstance(queues, list | tuple):
        return
    # Wrong values are left for the checks (jobs.E002, E003, E020) to report.
    names = [q for q in queues if isinstance(q, str)]
    timeout = get("REDIS_SOCKET_TIMEOUT")
    if get("REDIS_SENTINELS") and not url:
        try:
            target = redis_target()
        except ValueError:
            return
        settings.RQ_QUEUES = rq_sentinel_queues(target, names, timeout)
    elif isinstance(url, str) and url:
        settings.RQ_QUEUES = rq_queues(url, names, timeout)


def redacted(url: str) -> str:
    """The URL with its password replaced, safe to print and log."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
