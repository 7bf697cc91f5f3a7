"""The supported Python and Django versions (README "Supported versions"): the
same templates and start-up on Django 5.2 and 6.0, and the Makefile's second leg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.template import Engine
from django.template.backends.django import get_installed_libraries

from tests.conftest import BASE_DIR

FIND_PYTHON = BASE_DIR / "scripts" / "find-python.sh"


def _app_templates() -> list[Path]:
    origin = Path(Engine.get_default().get_template("jobs/overview.html").origin.name)
    return sorted(origin.parent.glob("*.html"))


def test_app_templates_compile_without_the_partials_library() -> None:
    """Django 6.0 has `{% partialdef %}` built in and warns when
    django-template-partials' `partials` library is loaded; on 5.2 the app's own
    `console` library brings the tags. So no template may load `partials`."""
    libraries = {
        name: path
        for name, path in get_installed_libraries().items()
        if name != "partials"
    }
    engine = Engine(libraries=libraries)
    templates = _app_templates()
    with_partials = [t for t in templates if "{% partialdef" in t.read_text()]
    assert len(with_partials) >= 5
    for path in templates:
        engine.from_string(path.read_text())


def test_project_renders_a_partial_without_a_deprecation_warning() -> None:
    """A fresh process, as a worker or the web starts: the settings, every
    template library and a partial, with deprecation warnings made errors."""
    script = (
        "import django; django.setup()\n"
        "from django.template import engines\n"
        "engines['django'].get_template('jobs/overview.html#live')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings", "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", script],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_find_python_names_a_working_interpreter_of_the_version() -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = subprocess.run(
        [str(FIND_PYTHON), version], capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0
    reported = subprocess.run(
        [found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reported.stdout.strip() == str(sys.version_info[:2])


def test_find_python_prints_nothing_for_a_missing_version() -> None:
    found = subprocess.run(
        [str(FIND_PYTHON), "3.99"], capture_output=True, text=True, timeout=60
    )
    assert (found.returncode, found.stdout) == (1, "")


def _second_leg_without_an_interpreter(ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "MAKEFLAGS"}}
    return subprocess.run(
        ["make", "--no-print-directory", "test-py313", "PY313="],
        env={**env, "CI": ci},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("ci", "returncode"), [("", 0), ("true", 2)])
def test_second_leg_without_python_3_13_is_reported_and_fails_only_in_ci(
    ci: str, returncode: int
) -> None:
    done = _second_leg_without_an_interpreter(ci)
    assert "no Python 3.13 interpreter" in done.stdout + done.stderr
    assert done.returncode == returncode
