"""The connection to Redis: the client factory (direct or through Sentinel),
the worker's and the job process's connections, waiting for Redis, ping."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.sentinel import Sentinel, SentinelConnectionPool

from jobs import conf
from jobs.backend.client import Client
from jobs.backend.errors import BackendError, explain, refused

log = logging.getLogger("jobs.queueing")

_connections: dict[tuple[Any, ...], Any] = {}


#: True in a forked job process (set by the worker right after the fork).
_in_job_process = False


def mark_job_process() -> None:
    global _in_job_process
    _in_job_process = True


def in_job_process() -> bool:
    return _in_job_process


#: No CLIENT SETINFO on connect: redis-py would read its own package metadata
#: for it (about 2 ms of CPU) and then spend two round trips, on every new
#: connection (a job process's own, when its worker could not lend it one).
NO_CLIENT_INFO: dict[str, Any] = {"driver_info": None}


def new_client(timeout: float | None = None, health_check: int = 10) -> Any:
    """A new Redis client for the app's server: the ONE place that reads
    where Redis is (REDIS_URL, or REDIS_SENTINELS and its companions).

    Through Sentinel the client asks the sentinels for the primary's address
    whenever it opens a connection, and drops its connections when a replica
    was promoted (or the old primary answers READONLY): a process follows a
    failover by itself, without restarting.

    A setting that names no usable server raises BackendError, as the
    client's own errors are (see jobs.backend.errors).
    """
    try:
        return _new_client(timeout, health_check)
    except ValueError as exc:  # a malformed REDIS_URL or REDIS_SENTINELS
        raise BackendError(str(exc)) from None


def _new_client(timeout: float | None, health_check: int) -> Any:
    target = conf.redis_target()
    seconds = conf.get("REDIS_SOCKET_TIMEOUT") if timeout is None else timeout
    options: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "health_check_interval": health_check,
        **NO_CLIENT_INFO,
    }
    if not target.sentinels:
        return Client.from_url(target.url, **options)
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={**target.sentinel_kwargs(seconds), **NO_CLIENT_INFO},
        password=target.password or None,
        db=target.db,
        **options,
    )
    return sentinel.master_for(target.master, redis_class=Client)


def connection() -> Any:
    """A Redis client for this process (clients are not shared across fork).

    Typed as Any: redis-py's sync and async return types share one union.
    """
    key = (os.getpid(), *_where())
    client = _connections.get(key)
    if client is None:
        client = new_client()
        _connections[key] = client
    return client


def use_in_this_process(client: Any) -> None:
    """Make `client` this process's connection() (a forked job process: its
    worker's client, on the connection the worker lent it; see jobconn.py).
    The worker's client talks to the same server: checks.py requires every
    queue on REDIS_URL's (or REDIS_SENTINELS') server."""
    _connections[(os.getpid(), *_where())] = client


def _where() -> tuple[str, str]:
    """The settings that say where Redis is, read cheaply (on every call of
    connection(): building a RedisTarget each time doubled its cost)."""
    sentinels = conf.get("REDIS_SENTINELS")
    if not sentinels:
        return getattr(settings, "REDIS_URL", ""), ""
    return repr(sentinels), str(conf.get("REDIS_SENTINEL_MASTER"))


def primary_address() -> str | None:
    """host:port of the server this process writes to now (through Sentinel:
    the primary the sentinels name), None if nobody can say."""
    pool = connection().connection_pool
    try:
        if isinstance(pool, SentinelConnectionPool):
            host, port = pool.get_master_address()
            return f"{host}:{port}"
    except redis.exceptions.RedisError:
        return None
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def primary_label() -> str:
    """Which server is primary, for the console: `host:port`, and through
    Sentinel the primary's name too ("unknown" while no sentinel can say)."""
    target = conf.redis_target()
    address = primary_address() or "unknown"
    if target.sentinels:
        return f"{address} (Sentinel master {target.master!r})"
    return address


def worker_connection(client: Any) -> Any:
    """The server and credentials of `client` (django-rq builds it from the
    URL alone), with the timeouts and options of connection()."""
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return new_client()  # django-rq's sentinel settings are the app's own
    options = {
        **pool.connection_kwargs,
        "socket_timeout": conf.get("REDIS_SOCKET_TIMEOUT"),
        "socket_connect_timeout": conf.get("REDIS_SOCKET_TIMEOUT"),
        "health_check_interval": 10,
        **NO_CLIENT_INFO,
    }
    return Client(
        connection_pool=type(pool)(connection_class=pool.connection_class, **options)
    )


#: Seconds between a starting process's attempts to reach Redis.
STARTUP_RETRY = 0.5


def wait_for_redis(client: Any, wait: float | None = None) -> None:
    """Make sure Redis answers before a worker or the scheduler starts.

    While it cannot be reached (a restart, a server still loading its data or
    starting beside the process), wait up to `wait` seconds (by default
    REDIS_STARTUP_WAIT) and say so once; wrong credentials end the wait at
    once. Giving up raises ImproperlyConfigured: one line naming REDIS_URL
    (or REDIS_SENTINELS).
    """
    wait = conf.get("REDIS_STARTUP_WAIT") if wait is None else wait
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            client.ping()
            return
        except BackendError as exc:
            if not _unreachable(exc) or time.monotonic() >= deadline:
                raise ImproperlyConfigured(explain(exc)) from None
            if not said:
                log.warning(
                    "waiting for redis",
                    extra={"error": explain(exc), "wait": wait},
                )
                said = True
            time.sleep(STARTUP_RETRY)


def _unreachable(exc: BackendError) -> bool:
    """Could waiting help? Not with wrong credentials nor with an error the
    server answered."""
    transient = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    return isinstance(exc, transient) and not refused(exc)


def ping() -> bool:
    """Is Redis answering? A dedicated client with a short timeout, so a page's
    status badge or /readyz never hangs on an unreachable server."""
    key = (os.getpid(), "ping", *_where())
    try:
        client = _connections.get(key)
        if client is None:
            client = new_client(timeout=0.5, health_check=0)
            _connections[key] = client
        return bool(client.ping())
    except BackendError:  # also a malformed REDIS_URL: nothing answers
        return False
