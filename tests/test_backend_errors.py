"""The backend raises the project's errors (jobs.backend.errors), which are
still redis-py's classes for RQ's and redis-py's own handlers."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import override_settings

from console.localredis import LocalRedis, free_port
from jobs.backend import connect
from jobs.backend.client import Client
from jobs.backend.errors import BackendError, BackendUnavailable, project_class
from jobs.backend.workers import ConsoleWorker
from jobs.processes.schedules import ConsoleScheduler
from tests.test_sentinel_settings import SENTINEL_SETTINGS


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalRedis]:
    """A server of this test's own, to stop under a client."""
    server = LocalRedis(directory=tmp_path / "redis", port=free_port()).start()
    yield server
    server.stop()


def test_a_closed_port_is_backend_unavailable_and_still_a_redis_connection_error():
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        with pytest.raises(BackendUnavailable) as caught:
            connect.connection().ping()
        assert connect.ping() is False
    assert isinstance(caught.value, redis.ConnectionError)
    assert "Connection refused" in str(caught.value)


def test_a_stopped_server_is_backend_unavailable_for_commands_and_pipelines(
    own_server: LocalRedis,
):
    client = Client.from_url(own_server.url, socket_timeout=2)
    assert client.set("k", "v")
    own_server.stop()
    with pytest.raises(BackendUnavailable) as caught:
        client.get("k")
    assert isinstance(caught.value, redis.ConnectionError)
    with pytest.raises(BackendUnavailable), client.pipeline() as pipe:
        pipe.get("k")
        pipe.execute()


def test_an_error_the_server_answers_is_a_backend_error_not_unavailable():
    client = connect.connection()
    client.set("text", "not a number")
    with pytest.raises(BackendError) as caught:
        client.incr("text")
    assert not isinstance(caught.value, BackendUnavailable)
    assert isinstance(caught.value, redis.ResponseError)
    with client.pipeline() as pipe:
        pipe.incr("text")
        with pytest.raises(redis.ResponseError) as in_pipeline:
            pipe.execute()
    assert isinstance(in_pipeline.value, BackendError)


def test_redis_own_handlers_still_catch_what_the_client_raises():
    """RQ and redis-py catch WatchError to retry a transaction."""
    client = connect.connection()
    client.set("watched", 1)
    with client.pipeline() as pipe:
        pipe.watch("watched")
        client.set("watched", 2)  # another client changes it meanwhile
        pipe.multi()
        pipe.set("watched", 3)
        with pytest.raises(redis.WatchError) as caught:
            pipe.execute()
    assert isinstance(caught.value, BackendError)
    assert client.get("watched") == b"2"


def test_a_malformed_redis_url_is_a_backend_error():
    with (
        override_settings(REDIS_URL="nonsense://somewhere"),
        pytest.raises(BackendError, match="redis://"),
    ):
        connect.new_client()
    with override_settings(REDIS_URL="nonsense://somewhere"):
        assert connect.ping() is False


def test_each_redis_class_has_one_project_class_that_pickles():
    kind = project_class(redis.exceptions.BusyLoadingError)
    assert kind is project_class(redis.exceptions.BusyLoadingError)
    assert issubclass(kind, BackendUnavailable)
    assert issubclass(kind, redis.ConnectionError)
    assert issubclass(project_class(redis.exceptions.ReadOnlyError), BackendUnavailable)
    error = kind("Redis is loading the dataset in memory")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is kind
    assert str(again) == "Redis is loading the dataset in memory"


def test_django_rq_connections_become_the_apps_client(redis_server: LocalRedis):
    """The worker and the scheduler get django-rq's plain client; they swap it."""
    plain = redis.Redis.from_url(redis_server.url)
    worker = ConsoleWorker(["default"], connection=plain)
    scheduler = ConsoleScheduler(queue_name="default", connection=plain)
    assert isinstance(worker.connection, Client)
    assert isinstance(scheduler.connection, Client)


def test_through_sentinel_the_client_is_the_apps_too():
    with override_settings(**SENTINEL_SETTINGS):
        assert isinstance(connect.new_client(), Client)
