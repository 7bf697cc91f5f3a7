"""Redis Sentinel as the alternative to REDIS_URL: environment variables of the
reference project, host settings and their checks, django-rq's settings."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings
from django_rq.connection_utils import get_redis_connection
from redis.sentinel import SentinelConnectionPool

from jobs import conf
from jobs.backend import connect, errors
from tests.test_foundation import manage, one_clear_line

SENTINEL_SETTINGS = {
    "REDIS_URL": "",
    "REDIS_SENTINELS": "sentinel-1:26379, sentinel-2:26380",
    "REDIS_SENTINEL_MASTER": "mymaster",
    "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
    "REDIS_PASSWORD": "primary-secret",
}


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"REDIS_SENTINELS": "127.0.0.1:x"}, "REDIS_SENTINELS", "not a number"),
        ({"REDIS_SENTINELS": ":26379"}, "REDIS_SENTINELS", "empty host"),
        ({"REDIS_SENTINELS": "sentinel-1"}, "REDIS_SENTINELS", "no port"),
        ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER", "must be set"),
        (
            {"REDIS_SENTINELS": "a:26379", "REDIS_URL": "redis://127.0.0.1:1/0"},
            "REDIS_SENTINELS",
            "not both",
        ),
    ],
)
def test_a_wrong_sentinel_variable_is_one_line_naming_it(
    env: dict[str, str], variable: str, says: str
) -> None:
    env = {"REDIS_SENTINEL_MASTER": "mymaster", **env} if "REDIS_URL" in env else env
    line = one_clear_line(manage("check", DEBUG="1", **env), variable)
    assert says in line


def test_sentinel_variables_configure_every_process() -> None:
    env = {key: value for key, value in SENTINEL_SETTINGS.items() if value}
    done = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings as s; from jobs import conf; "
        "print(s.REDIS_URL == '', conf.redis_target().label, "
        "s.RQ_QUEUES['default']['MASTER_NAME'])",
        DEBUG="1",
        **env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "True",
        "sentinel",
        "master",
        "'mymaster'",
        "via",
        "sentinel-1:26379,sentinel-2:26380",
        "mymaster",
    ]


@pytest.mark.parametrize(
    ("overrides", "code", "says"),
    [
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0"},
            "jobs.E020",
            "REDIS_URL and REDIS_SENTINELS are both set",
        ),
        ({"REDIS_SENTINELS": "host:port"}, "jobs.E021", "REDIS_SENTINELS: 'host:port'"),
        ({"REDIS_SENTINELS": [("", 26379)]}, "jobs.E021", "empty host"),
        (
            {"REDIS_SENTINEL_MASTER": ""},
            "jobs.E020",
            "REDIS_SENTINEL_MASTER is not set",
        ),
        ({"REDIS_DB": "zero"}, "jobs.E021", "REDIS_DB"),
    ],
)
def test_a_wrong_sentinel_host_setting_is_a_check_error_naming_it(
    overrides: dict[str, object], code: str, says: str
) -> None:
    with override_settings(**{**SENTINEL_SETTINGS, **overrides}):
        errors = [e for e in run_checks() if e.id == code]
    assert errors and says in errors[0].msg and errors[0].hint


def test_sentinel_host_settings_derive_django_rq_settings_that_pass_checks() -> None:
    with override_settings(**SENTINEL_SETTINGS):
        delattr(settings, "RQ_QUEUES")
        conf.apply_defaults()
        lanes = conf.get("RQ_QUEUES")
        assert [e.id for e in run_checks() if (e.id or "").startswith("jobs.")] == []
        django_rq_client = get_redis_connection(lanes["mail:high"])
        ours = connect.new_client()
    config = lanes["default"]
    assert config["SENTINELS"] == [["sentinel-1", 26379], ["sentinel-2", 26380]]
    assert config["SENTINEL_KWARGS"]["password"] == "sentinel-secret"
    for client in (django_rq_client, ours):
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        assert pool.connection_kwargs["password"] == "primary-secret"


def test_django_rq_settings_on_another_server_than_the_sentinels_are_refused() -> None:
    with override_settings(**SENTINEL_SETTINGS):
        errors = [e.msg for e in run_checks() if e.id == "jobs.E005"]
    assert errors == ["RQ_QUEUES['default:high'] does not use REDIS_SENTINELS"]


def test_an_unreachable_sentinel_set_is_named_without_its_password() -> None:
    with override_settings(**SENTINEL_SETTINGS):
        message = errors.explain(ConnectionError("No master found"))
    assert message.startswith("REDIS_SENTINELS: cannot reach the Redis server at")
    assert "sentinel master 'mymaster' via sentinel-1:26379" in message
    assert "secret" not in message
