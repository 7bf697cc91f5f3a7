"""The Prometheus side: our alerting rules pass their `promtool test rules`
cases, and what /metrics exports passes `promtool check metrics`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from jobs import services
from tests.conftest import final

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def promtool() -> str:
    """`make promtool` puts it next to the venv's python when the system has
    none. Missing, it skips the test, except in CI, where it fails."""
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    message = "promtool is not installed (make promtool)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_promtool(
    *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=RULES_DIR,
        timeout=120,
    )


def test_alerting_rules_are_valid() -> None:
    result = run_promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerting_rules_pass_their_unit_tests() -> None:
    result = run_promtool("test", "rules", "tests.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_exported_metrics_pass_promtool_check_metrics(run_until) -> None:
    promtool()  # skip before running jobs
    jobs = [
        services.job_submit(task="demo.echo", payload={"text": "ok"}),
        services.job_submit(
            task="demo.fail", payload={"times": -1}, retry={"max_attempts": 1}
        ),
        services.job_submit(
            task="demo.fail", payload={"times": 1}, retry={"base": 0.1}
        ),
    ]
    run_until(final(*jobs))
    staff = Client()
    staff.force_login(User.objects.create_user("ops", is_staff=True))
    text = staff.get("/metrics").content.decode()
    assert 'jobs_failed_total{queue="default",task="demo.fail"}' in text
    result = run_promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
