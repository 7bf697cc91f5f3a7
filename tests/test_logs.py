"""What Python would print as plain text comes out as one JSON line: an
uncaught exception (main thread, another thread, a multiprocessing child such
as RQ's scheduler), a warning, and gunicorn's own lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from console.localredis import free_port
from tests.conftest import wait_for
from tests.test_readme_commands import BASE_DIR, answers

PRELUDE = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
import django
django.setup()
"""


def stderr_lines(code: str) -> list[dict[str, Any]]:
    """Runs `code` in a fresh process with the project's settings; its
    stderr, every line of which must be a JSON object."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env={**os.environ, "DEBUG": "1", "PROCESS_NAME": "probe"},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert all(isinstance(line, dict) for line in lines), done.stderr
    return lines


def test_an_uncaught_exception_is_one_json_line_with_the_traceback():
    (line,) = stderr_lines("raise ValueError('boom')")
    assert line["level"] == "critical"
    assert line["process"] == "probe"
    assert line["msg"] == "uncaught ValueError: boom"
    assert "Traceback (most recent call last)" in line["exc"]


def test_an_exception_that_ends_a_thread_is_one_json_line():
    (line,) = stderr_lines(
        """
        import threading
        def fail():
            raise KeyError('in thread')
        thread = threading.Thread(target=fail, name='probe-thread')
        thread.start()
        thread.join()
        """
    )
    assert line["msg"].startswith("uncaught KeyError in thread probe-thread")
    assert "KeyError: 'in thread'" in line["exc"]


def test_a_multiprocessing_child_that_dies_logs_one_json_line():
    lines = stderr_lines(
        """
        import multiprocessing
        def fail():
            raise ConnectionError('redis went away')
        context = multiprocessing.get_context('fork')  # as RQ's ForkProcess
        child = context.Process(target=fail, name='Scheduler')
        child.start()
        child.join()
        assert child.exitcode == 1, child.exitcode
        """
    )
    (line,) = lines
    assert line["msg"] == "process Scheduler died"
    assert "ConnectionError: redis went away" in line["exc"]


def test_a_warning_is_a_json_line():
    (line,) = stderr_lines("import warnings; warnings.warn('old thing')")
    assert line["level"] == "warning"
    assert line["logger"] == "py.warnings"
    assert "old thing" in line["msg"]


def test_gunicorn_as_compose_runs_it_writes_json_lines():
    """The web's command from docker-compose.yml, on a free port: its own
    lines (start-up, access log, shutdown) are JSON too."""
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    command = list(compose["services"]["web"]["command"])
    port = free_port()
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = "1"
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    web = subprocess.Popen(
        command,
        env={**os.environ, "DEBUG": "1"},
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=60)
    finally:
        web.terminate()
        stdout, stderr = web.communicate(timeout=60)
    lines = [json.loads(line) for line in (stdout + stderr).splitlines()]
    assert {line["logger"] for line in lines} >= {"gunicorn.error", "gunicorn.access"}
    assert {line["process"] for line in lines} == {"web"}
