"""The dev stack's recorded settings (console/devsettings.py) let a second
terminal work, and never weaken a deployment's refusal to start without its
SECRET_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from console import devsettings
from tests.test_readme_commands import BASE_DIR, second_terminal

REFUSAL = "error: SECRET_KEY: must be set when DEBUG is off"


def debug_of(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What `manage.py` makes of the settings in `env`."""
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.DEBUG)",
        ],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def recorded(var_dir: Path) -> Path:
    path = devsettings.settings_file(var_dir)
    devsettings.record(path, debug="1")
    return path


def test_a_deployment_without_the_dev_stack_file_still_refuses(tmp_path):
    done = debug_of(second_terminal(tmp_path / "var"))
    assert done.returncode == 2
    assert done.stderr.startswith(REFUSAL)


def test_a_second_terminal_gets_the_dev_stacks_settings(tmp_path):
    recorded(tmp_path / "var")
    done = debug_of(second_terminal(tmp_path / "var"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_debug_off_in_the_environment_ignores_the_file(tmp_path):
    recorded(tmp_path / "var")
    env = dict(second_terminal(tmp_path / "var"), DEBUG="0")
    done = debug_of(env)
    assert done.returncode == 2
    assert done.stderr.startswith(REFUSAL)


def test_a_file_others_could_write_is_refused_with_its_name(tmp_path):
    path = recorded(tmp_path / "var")
    os.chmod(path, 0o644)
    done = debug_of(second_terminal(tmp_path / "var"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}: the dev stack's settings")
    assert "Traceback" not in done.stderr


def test_the_key_is_private_and_kept_across_restarts(tmp_path):
    path = devsettings.settings_file(tmp_path)
    first = devsettings.record(path, debug="true")
    assert first["DEBUG"] == "1"
    assert len(first["SECRET_KEY"]) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
    assert devsettings.record(path, debug="1") == first
    assert devsettings.read(path) == first
