"""The app as a reusable package: its settings, defaults and checks, and the
rule that it never imports the reference project."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from jobs import conf
from tests.conftest import BASE_DIR
from tests.factories import user_in


def error_ids() -> list[str]:
    return sorted({e.id for e in run_checks() if e.id and e.id.startswith("jobs.")})


def test_no_module_of_the_app_imports_the_reference_project() -> None:
    offenders = []
    for path in sorted((BASE_DIR / "jobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                names = [node.module or ""] if node.level == 0 else []
            offenders += [
                f"{path.relative_to(BASE_DIR)}:{node.lineno} imports {name}"
                for name in names
                if name == "console" or name.startswith("console.")
            ]
    assert offenders == []


def test_the_reference_settings_pass_every_check() -> None:
    assert error_ids() == []


def test_rq_settings_are_derived_from_redis_url_and_job_queues() -> None:
    from django.conf import settings

    lanes = {f"{q}{s}" for q in settings.JOB_QUEUES for s in (":high", "", ":low")}
    assert set(conf.get("RQ_QUEUES")) == lanes
    assert {c["URL"] for c in conf.get("RQ_QUEUES").values()} == {settings.REDIS_URL}
    assert conf.get("RQ")["SERIALIZER"] == "rq.serializers.JSONSerializer"
    assert conf.get("RQ")["WORKER_CLASS"] == "jobs.backend.workers.ConsoleWorker"


@pytest.mark.parametrize(
    ("overrides", "code", "names"),
    [
        ({"REDIS_URL": ""}, "jobs.E002", "REDIS_URL is not set"),
        ({"REDIS_URL": "http://x"}, "jobs.E002", "REDIS_URL must be"),
        ({"JOB_QUEUES": ["mail"]}, "jobs.E003", "JOB_QUEUES must list 'default'"),
        ({"JOB_QUEUES": "default"}, "jobs.E003", "JOB_QUEUES must be a list"),
        (
            {"RQ": {"SERIALIZER": "rq.serializers.DefaultSerializer"}},
            "jobs.E004",
            "RQ['SERIALIZER']",
        ),
        ({"RQ": {"WORKER_CLASS": "rq.Worker"}}, "jobs.E004", "RQ['WORKER_CLASS']"),
        ({"RQ_QUEUES": {}}, "jobs.E005", "RQ_QUEUES has no entry for 'default:high'"),
        ({"MIDDLEWARE": []}, "jobs.E009", "MIDDLEWARE lacks"),
    ],
)
def test_a_wrong_setting_is_a_check_error_naming_it(
    overrides: dict[str, object], code: str, names: str
) -> None:
    with override_settings(**overrides):
        errors = [e for e in run_checks() if e.id == code]
    assert errors and names in errors[0].msg and errors[0].hint


def test_a_missing_app_is_a_check_error() -> None:
    from django.conf import settings

    apps = [a for a in settings.INSTALLED_APPS if a != "django.contrib.humanize"]
    with override_settings(INSTALLED_APPS=apps):
        messages = [e.msg for e in run_checks() if e.id == "jobs.E008"]
    assert messages == [
        "INSTALLED_APPS lacks 'django.contrib.humanize', which the jobs app needs"
    ]


def test_a_missing_task_module_is_a_check_error_not_a_traceback() -> None:
    from jobs import checks, registry

    missing = registry.load(["jobs.tasks.nonexistent", "jobs.tasks.demo"])
    assert missing == ["jobs.tasks.nonexistent"]
    checks.missing_task_modules[:] = missing
    try:
        assert "jobs.E007" in error_ids()
    finally:
        checks.missing_task_modules.clear()


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["rqworker", "default", "nowhere"], "unknown queue 'nowhere'"),
        (["rqworker", "--worker-class", "rq.Worker"], "--worker-class rq.Worker"),
        (["rqworker", "--job-class=rq.job.Job", "default"], "--job-class rq.job.Job"),
    ],
)
def test_a_worker_started_wrongly_refuses_with_a_check_error(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], names: str
) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", *argv])
    with pytest.raises(SystemCheckError, match="jobs.E006") as raised:
        call_command("check", tags=["jobs"])
    assert names in str(raised.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["rqworker", "default", "mail:high", "--burst", "--name", "w1"],
        ["rqworker", "--worker-class", "jobs.backend.workers.ConsoleSimpleWorker"],
        ["rqworker-pool", "default", "--num-workers", "2"],
    ],
)
def test_a_worker_on_its_queues_and_lanes_passes(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", *argv])
    assert error_ids() == []


def test_defaults_fill_only_what_the_host_left_out() -> None:
    with override_settings(RQ={"DEFAULT_RESULT_TTL": 60}):
        from django.conf import settings

        del settings.REDIS_STARTUP_WAIT
        conf.apply_defaults()
        assert conf.get("RQ")["DEFAULT_RESULT_TTL"] == 60
        assert conf.get("RQ")["JOB_CLASS"] == "jobs.backend.queueing.ConsoleJob"
        assert settings.REDIS_STARTUP_WAIT == 30


@pytest.mark.django_db
def test_pages_need_the_viewer_permission() -> None:
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_user("nobody"))
    assert client.get("/jobs/").status_code == 403
    client.force_login(user_in("Viewers"))
    assert client.get("/jobs/").status_code == 200
    anonymous = Client().get("/jobs/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/?next=/jobs/")


def test_the_app_has_its_templates_and_static_files() -> None:
    app = Path(conf.__file__).parent
    assert (app / "templates" / "jobs" / "base.html").exists()
    assert (app / "static" / "jobs" / "console.css").exists()
    assert not (BASE_DIR / "templates" / "jobs").exists()


def test_django_rq_builds_the_apps_worker_and_scheduler_from_the_defaults() -> None:
    """What `manage.py rqworker` and `rqscheduler` do in a host project."""
    import django_rq
    from rq.serializers import JSONSerializer

    worker = django_rq.get_worker("default")
    assert type(worker).__name__ == "ConsoleWorker"
    assert worker.serializer is JSONSerializer
    assert type(django_rq.get_scheduler("default")).__name__ == "ConsoleScheduler"
