"""The README's commands, run as written, from a second terminal beside a
real `make run` stack; and that stack's Ctrl-C.

The second terminal's environment has no DEBUG, SECRET_KEY, REDIS_URL or
DATABASE_URL, as a newcomer's shell has none: the commands must find the dev
stack's settings by themselves (console/devsettings.py). The only thing set
is VAR_DIR, so that the stack lives in a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from console.localredis import free_port
from tests.conftest import wait_for

BASE_DIR = Path(__file__).resolve().parent.parent
#: What a newcomer's shell does not have.
UNSET = ("DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL")
#: What submits and runs jobs; the monitor, which records them, stops after.
JOB_PROCESSES = ("web", "worker-1", "worker-2", "scheduler")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def readme_commands() -> list[str]:
    """Every `manage.py` command in the README's shell blocks, continuation
    lines joined, in the order the README gives them."""
    readme = (BASE_DIR / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("  #")[0].strip()
            if re.match(r"(\.venv/bin/)?python manage\.py ", command):
                commands.append(command)
    return commands


def second_terminal(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["VAR_DIR"] = str(var_dir)
    return env


def run_as_written(
    command: str, env: dict[str, str], **names: str
) -> subprocess.CompletedProcess[str]:
    """The command with `<name>` placeholders filled in and the README's
    interpreter (`.venv/bin/python`, this checkout's virtualenv) as this one."""
    argv = shlex.split(command)
    argv = [sys.executable, *(names.get(a.strip("<>"), a) for a in argv[1:])]
    return subprocess.run(
        argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class DevStack:
    """`make run` (its command, `python -m console.devstack`) in its own
    session, so that a Ctrl-C can be sent to its process group as a
    terminal sends it: to the stack and everything it started in that group."""

    var_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    output: tuple[str, str] | None = None

    def start(self) -> None:
        env = second_terminal(self.var_dir)
        env.update(PORT=str(self.port), CONSOLE_ADMIN_PASSWORD="readme-pass")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "console.devstack"],
            env=env,
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        wait_for(
            lambda: answers(f"http://127.0.0.1:{self.port}/healthz"),
            timeout=120,
            interval=0.5,
        )

    def ctrl_c(self) -> tuple[str, str]:
        """Stops it as Ctrl-C does; its stdout and stderr."""
        if self.output is None:
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGINT)
            stdout, stderr = self.process.communicate(timeout=90)
            assert self.process.returncode == 0, stderr
            self.output = (stdout, stderr)
        return self.output


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    running = DevStack(var_dir=tmp_path_factory.mktemp("devstack") / "var")
    assert running.port != 8000
    running.start()
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.ctrl_c()


def test_the_readme_shows_the_second_terminal_commands():
    commands = readme_commands()
    assert any(" jobs submit " in c for c in commands)
    assert any(" jobs status <id> --json" in c for c in commands)


@pytest.mark.slow
def test_readme_commands_work_as_written_from_a_second_terminal(stack):
    env = second_terminal(stack.var_dir)
    helped = run_as_written("python manage.py help", env)
    assert helped.returncode == 0, helped.stderr
    job_id = ""
    for command in readme_commands():
        done = run_as_written(command, env, id=job_id)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        if " jobs submit " in command:
            job_id = done.stdout.strip().splitlines()[-1]
            assert JOB_ID.match(job_id), done.stdout
        if command.endswith("--json"):
            assert json.loads(done.stdout)["id"] == job_id
    assert job_id, "the README submits no job"


@pytest.mark.slow
def test_ctrl_c_stops_every_process_before_redis_and_every_line_is_json(stack):
    env = second_terminal(stack.var_dir)
    # A job running at the Ctrl-C: the workers stop warm, so it finishes.
    submit = "python manage.py jobs submit demo.sleep --payload '{\"seconds\": 8}'"
    job_id = run_as_written(submit, env).stdout.strip().splitlines()[-1]
    status = "python manage.py jobs status <id> --json"
    wait_for(
        lambda: (
            json.loads(run_as_written(status, env, id=job_id).stdout)["status"]
            == "started"
        ),
        timeout=60,
        interval=0.2,
    )
    stdout, stderr = stack.ctrl_c()
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(json.loads(line), dict) for line in stderr.splitlines())
    said = [(entry["process"], entry["msg"]) for entry in lines]
    stopping = said.index(
        ("stack", "stopping: warm shutdown of every process, then Redis")
    )
    monitor_stopped = said.index(("stack", "stopped monitor"))
    redis_stopped = said.index(
        ("redis", "local server stopped (data kept in var/redis)")
    )
    for name in JOB_PROCESSES:
        assert stopping < said.index(("stack", f"stopped {name}")) < monitor_stopped
    assert monitor_stopped < redis_stopped
    # Written as JSON by the processes themselves (the stack wraps any other
    # line, as it does migrate's and runserver's banners): no logger of
    # their own in plain text, no traceback printed line by line.
    own = [e for e in lines if e["process"] in {*JOB_PROCESSES, "monitor"} - {"web"}]
    assert own and all("logger" in e for e in own), [
        e["msg"] for e in own if "logger" not in e
    ]
    # Nothing lost Redis on the way down (the scheduler's locks, the monitor).
    troubles = {"warning", "error", "critical"}
    assert not [e for e in lines[stopping:] if e["level"] in troubles]
    # The file the stack left keeps commands working against its database.
    after = run_as_written(status, env, id=job_id)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["status"] == "succeeded"
