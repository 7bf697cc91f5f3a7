"""The set-up contract: configuration errors, probes, compose, the dev stack."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands
from django.test import Client

from console.localredis import LocalRedis, free_port
from jobs.backend import connect, queues
from tests.conftest import BASE_DIR, wait_for

MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"}
    }
    return subprocess.run(
        [*MANAGE, *args],
        env={**base, **env},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_clear_line(done: subprocess.CompletedProcess[str], variable: str) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    return lines[0]


def test_missing_secret_key_with_debug_off_refuses_to_start():
    line = one_clear_line(manage("check", DEBUG="0"), "SECRET_KEY")
    assert "must be set" in line


def test_malformed_database_url_names_the_variable():
    one_clear_line(
        manage("check", DEBUG="1", DATABASE_URL="nonsense://x"), "DATABASE_URL"
    )


def burst_worker(url: str, wait: str) -> subprocess.CompletedProcess[str]:
    env = {"DEBUG": "1", "REDIS_URL": url, "REDIS_STARTUP_WAIT": wait}
    return manage("rqworker", "default", "--burst", **env)


def test_unreachable_redis_names_the_variable():
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = burst_worker(url, wait="0")
    assert "cannot reach" in one_clear_line(done, "REDIS_URL")


def test_a_worker_says_it_waits_for_redis_then_gives_up_in_one_line():
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = burst_worker(url, wait="1")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert [json.loads(lines[0])["msg"]] == ["waiting for redis"]
    assert lines[-1].startswith("error: REDIS_URL: cannot reach")


def test_a_worker_does_not_wait_on_a_wrong_password(redis_server):
    url = redis_server.url.replace(redis_server.password, "wrong-password")
    done = burst_worker(url, wait="60")
    assert "authentication failed" in one_clear_line(done, "REDIS_URL")


def test_wrong_redis_password_names_the_variable(redis_server):
    url = redis_server.url.replace(redis_server.password, "wrong-password")
    line = one_clear_line(manage("jobs", "ping", DEBUG="1", REDIS_URL=url), "REDIS_URL")
    assert "authentication failed" in line
    assert "wrong-password" not in line  # the secret is never printed


def test_deploy_check_with_production_settings_has_only_documented_warnings():
    done = manage(
        "check",
        "--deploy",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="console.example.com",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_SSL_REDIRECT="1",
    )
    assert done.returncode == 0, done.stderr
    found = set(re.findall(r"\(security\.W\d+\)", done.stderr + done.stdout))
    documented = set(
        re.findall(r"security\.W\d+", (BASE_DIR / "README.md").read_text())
    )
    assert {w.strip("()") for w in found} <= documented


@pytest.mark.django_db
def test_health_probes_need_no_login_and_show_no_secret(redis_server):
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert redis_server.password not in ready.content.decode()


@pytest.mark.django_db
def test_readyz_says_which_dependency_failed(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    connect._connections.clear()
    try:
        ready = Client().get("/readyz")
    finally:
        connect._connections.clear()
    assert ready.status_code == 503
    assert ready.json()["redis"] == "unavailable"
    assert ready.json()["database"] == "ok"


@pytest.mark.django_db
def test_every_page_but_the_probes_needs_a_login():
    client = Client()
    for url in ("/", "/jobs/", "/submit/", "/jobs/abc/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.get("/accounts/login/").status_code == 200


def test_compose_commands_are_real_and_variables_documented():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    readme = (BASE_DIR / "README.md").read_text()
    commands = get_commands()
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or "manage.py" not in command:
            continue
        assert command[command.index("manage.py") + 1] in commands, name
    assert compose["services"]["web"]["command"][0] == "gunicorn"
    text = (BASE_DIR / "docker-compose.yml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)", text))
    variables |= set(compose["x-app"]["environment"])
    assert variables
    for variable in variables:
        assert f"`{variable}`" in readme, f"{variable} is not documented in README.md"


def test_data_survives_a_restart_of_the_server(tmp_path):
    server = LocalRedis(directory=tmp_path, port=free_port()).start()
    try:
        queue_before = server.url
        import redis as redis_lib

        client = redis_lib.Redis.from_url(queue_before)
        client.rpush("rq:queue:default", "job-1")
        server.restart()
        client = redis_lib.Redis.from_url(server.url)
        assert client.lrange("rq:queue:default", 0, -1) == [b"job-1"]
    finally:
        server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.slow
def test_dev_stack_serves_the_login_page_and_keeps_queued_jobs(tmp_path):
    """`make run` as a newcomer sees it, twice, with a job queued in between."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL", "SECRET_KEY"}
    }
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
        DEBUG="1",
        CONSOLE_ADMIN_PASSWORD="demo-pass",
    )

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "console.devstack"],
            env=env,
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(stack: subprocess.Popen[str]) -> str:
        stack.send_signal(signal.SIGINT)
        output, _ = stack.communicate(timeout=60)
        assert stack.returncode == 0
        return output

    stack = start()
    try:
        wait_for(
            lambda: _get(f"http://127.0.0.1:{port}/accounts/login/")[0] == 200,
            timeout=120,
            interval=0.5,
        )
        submitted = subprocess.run(
            [
                *MANAGE,
                "jobs",
                "submit",
                "demo.echo",
                "--payload",
                '{"text": "kept"}',
                "--delay",
                "3600",
            ],
            env=env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip().splitlines()[-1]
    finally:
        output = stop(stack)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    processes = {entry.get("process") for entry in lines}
    assert {
        "stack",
        "redis",
        "web",
        "worker-1",
        "worker-2",
        "scheduler",
        "monitor",
    } <= processes
    assert any("admin / demo-pass" in entry.get("msg", "") for entry in lines)
    url = Path(env["VAR_DIR"], "redis", "url").read_text()
    assert url.startswith("redis://:")

    stack = start()
    try:
        wait_for(
            lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
            timeout=120,
            interval=0.5,
        )
        status = subprocess.run(
            [*MANAGE, "jobs", "status", job_id, "--json"],
            env=env,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert json.loads(status.stdout)["status"] == "scheduled"
        assert job_id in queueing_scheduled(url)
    finally:
        stop(stack)


def queueing_scheduled(url: str) -> list[str]:
    import redis as redis_lib

    client: Any = redis_lib.Redis.from_url(url)
    return [m.decode() for m in client.zrange("rq:scheduled:default", 0, -1)]


def test_queueing_names_lanes_by_priority():
    assert queues.lanes("mail") == ["mail:high", "mail", "mail:low"]
    assert queues.logical_queue("mail:low") == "mail"
