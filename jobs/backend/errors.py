"""The backend's errors: what the code above the backend catches, instead of
any redis exception.

Every error the app's Redis clients raise (see jobs.backend.client) is one of
these. It is also still the redis-py class it was raised as, so RQ's and
redis-py's own handlers (`except redis.ConnectionError`, `except WatchError`)
keep working inside the backend: for each redis class the client raises a
class made once from both, e.g. `BackendUnavailable` + `redis.ConnectionError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from jobs import conf


class BackendError(Exception):
    """The queue backend (Redis) refused or failed a command."""


class BackendUnavailable(BackendError):
    """The queue backend cannot be reached now: down, unreachable, timing out,
    still loading its data, or a replica that was the primary (failover)."""


#: redis-py's classes that mean "not reachable now", not "refused".
#: ConnectionError covers BusyLoadingError and Sentinel's MasterNotFoundError.
UNAVAILABLE: tuple[type[redis.RedisError], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
)

_classes: dict[type[redis.RedisError], type[BackendError]] = {}


def project_class(original: type[redis.RedisError]) -> type[BackendError]:
    """The class that is both the project's error and `original` (made once)."""
    found = _classes.get(original)
    if found is None:
        base = BackendUnavailable if issubclass(original, UNAVAILABLE) else BackendError
        found = type(
            original.__name__,
            (base, original),
            {
                "__module__": __name__,
                "__qualname__": original.__name__,
                "__reduce__": _reduce,
                "redis_class": original,
            },
        )
        _classes[original] = found
    return found


def translated(exc: redis.RedisError) -> BackendError:
    """The same error, as an instance of its project class (same message,
    attributes and traceback)."""
    if isinstance(exc, BackendError):
        return exc
    kind = project_class(type(exc))
    # Not through __init__: some redis classes take other arguments; the
    # attributes their __init__ set are copied instead.
    new = kind.__new__(kind, *exc.args)
    new.__dict__.update(exc.__dict__)
    return new.with_traceback(exc.__traceback__)


@contextmanager
def translating() -> Iterator[None]:
    """Code that runs clients the app did not make (django-rq's commands
    build their own) raises the backend's errors too."""
    try:
        yield
    except redis.RedisError as exc:
        raise translated(exc) from exc.__cause__


def _rebuild(original: type[redis.RedisError], args: Any, state: Any) -> BackendError:
    kind = project_class(original)
    new = kind.__new__(kind, *args)
    new.__dict__.update(state)
    return new


def _reduce(self: Any) -> tuple[Any, ...]:
    """Pickles by its redis class, which names it in any process."""
    return (_rebuild, (self.redis_class, self.args, self.__dict__))


def refused(exc: BaseException) -> bool:
    """Wrong credentials or permissions: waiting will not help (redis-py
    raises them as ConnectionError subclasses)."""
    return isinstance(
        exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError
    )


def explain(exc: BaseException) -> str:
    """One line naming REDIS_URL or REDIS_SENTINELS (without a password) and
    what went wrong."""
    target = conf.redis_target()
    name, where = target.variable, target.label
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "password" in lowered or "auth" in lowered or "wrongpass" in lowered:
        return f"{name}: authentication failed for {where} ({text})"
    return f"{name}: cannot reach the Redis server at {where} ({text})"
