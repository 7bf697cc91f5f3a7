"""The app's Redis client: redis-py's, raising the backend's own errors.

Every client the app makes (jobs.backend.queueing.new_client, the workers'
and the scheduler's connections) is a Client, so whatever a command or a
pipeline raises is a jobs.backend.errors class that is also the redis-py class
it was (see errors.py).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline

from jobs.backend.errors import translated


class Client(redis.Redis):
    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except redis.RedisError as exc:
            raise translated(exc) from exc.__cause__

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        # Re-classed rather than built: Pipeline's constructor arguments
        # differ between redis-py releases, its class does not.
        pipe.__class__ = ClientPipeline
        return pipe


class ClientPipeline(Pipeline):
    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except redis.RedisError as exc:
            raise translated(exc) from exc.__cause__

    def execute(self, raise_on_error: bool = True) -> Any:
        try:
            return super().execute(raise_on_error)
        except redis.RedisError as exc:
            raise translated(exc) from exc.__cause__
