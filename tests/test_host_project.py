"""The app installed from its wheel into a fresh `django-admin startproject`.

Only the lines README.md's "Add to your Django project" gives are written
into the host's settings and URLconf (read from README.md, so the two cannot
drift); the host adds an app of its own with a model and a task, submits from
its own view, runs a real `manage.py rqworker` and `jobs monitor`, and sees
the job in the console mounted under its own prefix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from console.localredis import LocalRedis
from tests.conftest import BASE_DIR

pytestmark = pytest.mark.slow

PREFIX = "/ops/jobs/"
README_URL = '"redis://127.0.0.1:6379/0"'

# The host's own user model: the app's history points at it.
ORDERS_MODELS = """
from django.contrib.auth.models import AbstractUser
from django.db import models


class Customer(AbstractUser):
    pass


class Order(models.Model):
    status = models.CharField(max_length=20, default="new")
"""
ORDERS_TASKS = """
from pydantic import BaseModel

from jobs.registry import task
from orders.models import Order


class Ship(BaseModel):
    order_id: int


@task("orders.ship", schema=Ship)
def ship(payload: Ship) -> dict:
    Order.objects.filter(pk=payload.order_id).update(status="shipped")
    return {"order_id": payload.order_id}
"""
ORDERS_VIEWS = """
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.views.decorators.http import require_POST

from jobs.services import job_submit


@login_required
@require_POST
def ship(request, pk):
    record = job_submit(
        task="orders.ship", payload={"order_id": pk}, actor=request.user
    )
    return JsonResponse({"job": record.pk})
"""
HOST_JOB_PAGE = """{% extends "jobs/job_detail.html" %}
{% block title %}Shop: {{ block.super }}{% endblock %}
"""
HOST_URLS = """
from orders.views import ship

urlpatterns += [path("orders/<int:pk>/ship/", ship)]
"""
# Run by the host's python: what a host's own code and its users do.
SUBMIT = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.test.utils import setup_test_environment
import jobs
from orders.models import Order

setup_test_environment()
assert "/venv/" in jobs.__file__, jobs.__file__  # the wheel, not the checkout
User = get_user_model()
order = Order.objects.create()
clerk = User.objects.create_user("clerk")
viewer = User.objects.create_user("viewer")
viewer.user_permissions.add(Permission.objects.get(codename="view_jobrecord"))
User.objects.create_user("nobody")
client = Client()
client.force_login(clerk)
response = client.post(f"/orders/{order.pk}/ship/")
assert response.status_code == 200, response.content
print(response.json()["job"])
"""
VERIFY = """
import sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
from jobs import registry
from jobs.models import JobRecord
from orders.models import Order

setup_test_environment()
User = get_user_model()
job_id, prefix = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
record = JobRecord.objects.get(pk=job_id)
while record.status != "succeeded" and time.monotonic() < deadline:
    time.sleep(0.2)  # the monitor writes the worker's events
    record.refresh_from_db()
print("status", record.status, "attempts", record.attempt_set.count())
print("submitted_by", type(record.submitted_by).__name__, record.submitted_by)
print("order", Order.objects.get().status)
print("tasks", ",".join(t.name for t in registry.all_tasks()))
page = f"{prefix}jobs/{job_id}/"
for name in ("viewer", "nobody"):
    client = Client()
    client.force_login(User.objects.get(username=name))
    response = client.get(page)
    text = response.content.decode()
    shown = job_id in text and "<title>Shop:" in text
    print(name, response.status_code, "shown" if shown else "not shown")
response = Client().get(page)
print("anonymous", response.status_code, response.get("Location", ""))
"""


def readme_blocks() -> dict[str, str]:
    """The README's settings and URLconf lines, by the file they go in."""
    text = (BASE_DIR / "README.md").read_text()
    section = text.split("## Add to your Django project", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", section, flags=re.S)
    return dict(blocks)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def host_env(home: Path) -> dict[str, str]:
    """The test's own settings and paths must not leak into the host."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "DJANGO", "COVERAGE", "REDIS", "DATABASE"))
        and key not in {"DEBUG", "VIRTUAL_ENV", "JOB_QUEUES", "JOB_TASK_MODULES"}
    }
    env["PATH"] = f"{home / 'venv' / 'bin'}:{env.get('PATH', '')}"
    env["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    return env


def build_and_install(home: Path, *extra: str) -> Path:
    """The wheel, built from the app and pyproject.toml alone, installed with
    pip (dependencies from pip's cache or index) into a new virtualenv, with
    what the host itself uses (`extra`: its database driver)."""
    source = home / "source"
    shutil.copytree(
        BASE_DIR / "jobs", source / "jobs", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(BASE_DIR / "pyproject.toml", source)
    wheels = home / "wheels"
    quiet = ["--quiet", "--disable-pip-version-check"]
    pip = [sys.executable, "-m", "pip"]
    run(
        [*pip, "wheel", *quiet, "--no-deps", "-w", str(wheels), str(source)],
        home,
        host_env(home),
    )
    (wheel,) = wheels.glob("django_rq_opsconsole-*.whl")
    run([sys.executable, "-m", "venv", str(home / "venv")], home, host_env(home))
    python = home / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", *quiet, str(wheel), *extra]
    run(install, home, host_env(home))
    return python


def create_host(
    home: Path, python: Path, redis_url: str, database: dict[str, Any] | None
) -> Path:
    env = host_env(home)
    run(
        [str(home / "venv" / "bin" / "django-admin"), "startproject", "shop"], home, env
    )
    project = home / "shop"
    run([str(python), "manage.py", "startapp", "orders"], project, env)
    write_host_code(project)
    write_host_settings(project, redis_url, database)
    run([str(python), "manage.py", "makemigrations", "orders", "-v0"], project, env)
    run([str(python), "manage.py", "migrate", "-v0"], project, env)
    return project


def write_host_code(project: Path) -> None:
    """The host's own app, and its override of a template of the app's."""
    (project / "orders" / "models.py").write_text(ORDERS_MODELS)
    (project / "orders" / "tasks.py").write_text(ORDERS_TASKS)
    (project / "orders" / "views.py").write_text(ORDERS_VIEWS)
    (project / "templates" / "jobs").mkdir(parents=True)
    (project / "templates" / "jobs" / "job_detail.html").write_text(HOST_JOB_PAGE)


def write_host_settings(
    project: Path, redis_url: str, database: dict[str, Any] | None
) -> None:
    """README's lines; the rest is the host's own business (its app, its user
    model, its template directory, its database)."""
    blocks = readme_blocks()
    settings_lines = blocks["settings.py"].replace(README_URL, repr(redis_url))
    assert settings_lines != blocks["settings.py"], "README's REDIS_URL line moved"
    own = [
        "INSTALLED_APPS += ['orders']",
        "AUTH_USER_MODEL = 'orders.Customer'",
        "TEMPLATES[0]['DIRS'] = [BASE_DIR / 'templates']",
    ]
    if database:
        own.append(f"DATABASES = {{'default': {database!r}}}")
    with open(project / "shop" / "settings.py", "a") as settings:
        settings.write("\n".join(["", settings_lines, *own, ""]))
    with open(project / "shop" / "urls.py", "a") as urls:
        urls.write(f"\n{blocks['urls.py']}\n{HOST_URLS}")


@contextmanager
def host_database() -> Iterator[dict[str, Any] | None]:
    """Under TEST_POSTGRES, a new PostgreSQL database of the host's own on the
    server DATABASE_URL names; else the host keeps startproject's SQLite."""
    if os.environ.get("TEST_POSTGRES") != "1":
        yield None
        return
    import dj_database_url
    import psycopg

    server: dict[str, Any] = dict(dj_database_url.parse(os.environ["DATABASE_URL"]))
    name = f"host_project_{os.getpid()}"
    params: dict[str, Any] = {
        "host": server["HOST"],
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"],
        "dbname": server["NAME"],
        "autocommit": True,
    }
    with psycopg.connect(**params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            "ENGINE": "django.db.backends.postgresql",
            **{key: server[key] for key in ("HOST", "PORT", "USER", "PASSWORD")},
            "NAME": name,
        }
    finally:
        with psycopg.connect(**params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def host(
    tmp_path_factory: pytest.TempPathFactory, redis_server: LocalRedis
) -> Iterator[tuple[Path, Path]]:
    home = tmp_path_factory.mktemp("host")
    on_postgres = os.environ.get("TEST_POSTGRES") == "1"
    python = build_and_install(home, *(["psycopg[binary]"] if on_postgres else []))
    with host_database() as database:
        yield python, create_host(home, python, redis_server.url, database)


def test_host_task_runs_and_shows_in_its_console(host: tuple[Path, Path]) -> None:
    python, project = host
    env = host_env(project.parent)
    job_id = run([str(python), "-c", SUBMIT], project, env).strip()
    manage = [str(python), "manage.py"]
    run([*manage, "rqworker", "--burst", "default"], project, env)
    monitor = subprocess.Popen(
        [*manage, "jobs", "monitor"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = run([str(python), "-c", VERIFY, job_id, PREFIX], project, env)
    finally:
        monitor.terminate()
        monitor.wait(timeout=30)
    print(report)
    lines = dict(line.split(" ", 1) for line in report.splitlines())
    assert lines["status"].startswith("succeeded attempts 1")
    assert lines["order"] == "shipped"
    assert lines["submitted_by"] == "Customer clerk"
    assert lines["tasks"] == "orders.ship"  # no demo tasks unless asked for
    assert lines["viewer"] == "200 shown"
    assert lines["nobody"].startswith("403")
    assert lines["anonymous"].startswith("302 /accounts/login/?next=/ops/jobs/")


BROKEN = [
    ("REDIS_URL left out", r"(?m)^REDIS_URL = .*$", "", "jobs.E002"),
    (
        "pickle",
        r"$",
        "\nRQ = {'SERIALIZER': 'rq.serializers.DefaultSerializer'}\n",
        "jobs.E004",
    ),
]


@pytest.mark.parametrize(
    ("pattern", "replacement", "code"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_host_with_a_wrong_setting_gets_a_check_error(
    host: tuple[Path, Path], pattern: str, replacement: str, code: str
) -> None:
    """`check` says what to fix, and a worker refuses to start, with no
    traceback."""
    python, project = host
    settings = (project / "shop" / "settings.py").read_text()
    (project / "shop" / "broken.py").write_text(
        re.sub(pattern, replacement, settings, count=1)
    )
    env = {**host_env(project.parent), "DJANGO_SETTINGS_MODULE": "shop.broken"}
    commands = (["check"], ["migrate"], ["rqworker", "--burst", "default"])
    for command in commands:
        done = subprocess.run(
            [str(python), "manage.py", *command],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0, command
        assert code in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr


def test_readme_section_gives_settings_and_urls() -> None:
    blocks = readme_blocks()
    assert set(blocks) == {"settings.py", "urls.py"}
    assert README_URL in blocks["settings.py"]
    assert 'include("jobs.urls")' in textwrap.dedent(blocks["urls.py"])
