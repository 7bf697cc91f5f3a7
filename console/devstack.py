"""`make run`: the whole stack in one terminal, one Ctrl-C stops it all.

Starts a local Redis-compatible server (unless REDIS_URL is set), migrates,
creates the demo login, then runs the web console, two workers, the scheduler
and the monitor. Every line any process prints is re-emitted as one JSON
object with the process name. Ctrl-C stops them all warm, and Redis last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO

from console import devsettings
from console.localredis import LocalRedis, dev_server

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
#: Seconds the processes get to stop warm (a running job to finish) before
#: they are killed.
STOP_TIMEOUT = 30
_print_lock = threading.Lock()


def emit(process: str, msg: str, level: str = "info", **extra: object) -> None:
    entry = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "level": level,
        "process": process,
        "msg": msg,
        **extra,
    }
    with _print_lock:
        print(json.dumps(entry), flush=True)


def forward(name: str, line: str) -> None:
    """A child's line as one JSON object: its own if it wrote JSON (as every
    process configured by console/settings.py does), else wrapped."""
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    if isinstance(entry, dict):
        entry.setdefault("process", name)
        with _print_lock:
            print(json.dumps(entry), flush=True)
    else:
        emit(name, line)


def relay(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if line:
            forward(name, line)


def processes(port: str) -> dict[str, list[str]]:
    queues = os.environ.get("JOB_QUEUES", "default,mail,reports").split(",")
    worker = [*MANAGE, "rqworker", *queues, "--with-scheduler"]
    return {
        "web": [*MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker-1": worker,
        "worker-2": worker,
        "scheduler": [*MANAGE, "rqscheduler", "--interval", "1"],
        "monitor": [*MANAGE, "jobs", "monitor"],
    }


class StackError(RuntimeError):
    """A start-up step failed; the stack stops what it started."""


class Stack:
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.relays: dict[str, threading.Thread] = {}
        self.redis: LocalRedis | None = None
        self.stop_requested = False
        self.stopping = False
        self.env = dict(os.environ, DEBUG=os.environ.get("DEBUG") or "1")

    def on_signal(self, signum: int, _frame: object) -> None:
        """Ctrl-C or SIGTERM: stop (warm). Again while stopping: forward it,
        which workers take as "stop now" (the running job is killed). Prints
        nothing: the main thread may be in the middle of a line."""
        if self.stopping:
            self.signal_children(signal.SIGTERM)
        self.stop_requested = True

    def record_settings(self) -> None:
        """What the stack runs with, for commands typed in a second terminal
        (console/devsettings.py): its DEBUG and a generated SECRET_KEY."""
        recorded = devsettings.record(
            devsettings.settings_file(VAR_DIR), debug=self.env["DEBUG"]
        )
        if not self.env.get("SECRET_KEY"):
            self.env["SECRET_KEY"] = recorded["SECRET_KEY"]

    def start_redis(self) -> None:
        if self.env.get("REDIS_URL"):
            emit("stack", "using REDIS_URL from the environment")
            return
        self.redis = dev_server(VAR_DIR).start()
        url_file = VAR_DIR / "redis" / "url"
        url_file.write_text(self.redis.url)
        os.chmod(url_file, 0o600)
        self.env["REDIS_URL"] = self.redis.url
        emit(
            "redis",
            "local server started",
            port=self.redis.port,
            dir=str(self.redis.directory),
            appendonly=True,
        )

    def manage(self, *args: str, check: bool = True) -> int:
        env = dict(self.env, PROCESS_NAME="setup")
        done = subprocess.run(
            [*MANAGE, *args], env=env, capture_output=True, start_new_session=True
        )
        for line in (done.stdout + done.stderr).decode().splitlines():
            if line.strip():
                forward("setup", line)
        if check and done.returncode:
            raise StackError(f"`manage.py {' '.join(args)}` failed")
        return done.returncode

    def spawn(self, name: str, argv: list[str]) -> None:
        env = dict(self.env, PROCESS_NAME=name, PYTHONUNBUFFERED="1")
        child = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children[name] = child
        assert child.stdout is not None
        thread = threading.Thread(target=relay, args=(name, child.stdout), daemon=True)
        thread.start()
        self.relays[name] = thread
        emit("stack", f"started {name}", pid=child.pid)

    def start(self, port: str) -> dict[str, list[str]]:
        self.record_settings()
        self.start_redis()
        self.manage("migrate", "--noinput")
        password = os.environ.get("CONSOLE_ADMIN_PASSWORD", "admin")
        self.env["DJANGO_SUPERUSER_PASSWORD"] = password
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
            check=False,
        )
        specs = processes(port)
        for name, argv in specs.items():
            if not self.stop_requested:
                self.spawn(name, argv)
        emit(
            "stack",
            f"console: http://127.0.0.1:{port}/  login: admin / {password}"
            "  (Ctrl-C stops everything)",
        )
        return specs

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        try:
            specs = self.start(os.environ.get("PORT", "8000"))
            while not self.stop_requested:
                time.sleep(0.5)
                self.restart_dead(specs)
        except StackError as exc:
            emit("stack", str(exc), level="error")
            return 1
        finally:
            self.stop()
        return 0

    def restart_dead(self, specs: dict[str, list[str]]) -> None:
        for name, child in list(self.children.items()):
            code = child.poll()
            if code is not None and not self.stop_requested:
                emit(
                    "stack",
                    f"{name} exited with {code}; restarting in 2 s",
                    level="warning",
                )
                time.sleep(2)
                if not self.stop_requested:
                    self.spawn(name, specs[name])

    def signal_children(self, signum: int, names: list[str] | None = None) -> None:
        for name, child in self.children.items():
            if child.poll() is None and (names is None or name in names):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signum)

    def stop(self) -> None:
        """Warm (running jobs finish), in order: what submits and runs jobs,
        then the monitor, which records their last events, then Redis, which
        every one of them uses until it exits."""
        if self.stopping:
            return
        self.stopping = True
        emit("stack", "stopping: warm shutdown of every process, then Redis")
        users = [name for name in self.children if name != "monitor"]
        self.stop_children(users)
        self.stop_children([name for name in self.children if name not in users])
        if self.redis is not None:
            self.redis.stop()
            emit("redis", "local server stopped (data kept in var/redis)")
        emit("stack", "stopped")

    def stop_children(self, names: list[str]) -> None:
        self.signal_children(signal.SIGTERM, names)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name in names:
            child = self.children[name]
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                emit("stack", f"{name} did not stop in time; killing", level="warning")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            self.relays[name].join(timeout=5)  # its last lines first
            emit("stack", f"stopped {name}", code=child.returncode)


def main() -> int:
    try:
        return Stack().run()
    except Exception as exc:  # one JSON line, as from every other process
        emit("stack", f"failed: {exc}", level="critical", exc=traceback.format_exc())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
