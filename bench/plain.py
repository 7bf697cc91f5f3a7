"""Plain RQ, as a project without the console would use it: the baseline."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from rq import Queue
from rq.queue import EnqueueData
from rq.serializers import JSONSerializer

QUEUE = "plain"
FUNC = "bench.noop.noop"


def client() -> Any:
    return redis.Redis.from_url(settings.REDIS_URL)


def queue(connection: Any = None) -> Queue:
    return Queue(QUEUE, connection=connection or client(), serializer=JSONSerializer)


def prepared(count: int) -> list[EnqueueData]:
    return [Queue.prepare_data(FUNC, kwargs={"text": str(i)}) for i in range(count)]


def enqueue_many(target: Queue, datas: list[EnqueueData]) -> None:
    """All the jobs in one pipeline (one MULTI/EXEC)."""
    with target.connection.pipeline() as pipe:
        target.enqueue_many(datas, pipeline=pipe)
        pipe.execute()
