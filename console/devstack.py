"""`make run`: the whole stack in one terminal, one Ctrl-C stops it all.

Starts a local Redis-compatible server (unless REDIS_URL is set), migrates,
creates the demo login, then runs the web console, two workers, the scheduler
and the monitor. Every line any process prints is re-emitted as one JSON
object with the process name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from console.localredis import LocalRedis, dev_server

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
MANAGE = [sys.executable, str(BASE_DIR / "manage.py")]
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


def relay(name: str, stream: object) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode(errors="replace").rstrip()
        if not line:
            continue
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


class Stack:
    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.redis: LocalRedis | None = None
        self.stopping = False
        self.env = dict(os.environ, DEBUG=os.environ.get("DEBUG", "1"))

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
        done = subprocess.run([*MANAGE, *args], env=env, capture_output=True)
        for line in (done.stdout + done.stderr).decode().splitlines():
            if line.strip():
                emit("setup", line)
        if check and done.returncode:
            raise SystemExit(f"`manage.py {' '.join(args)}` failed")
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
        threading.Thread(target=relay, args=(name, child.stdout), daemon=True).start()
        emit("stack", f"started {name}", pid=child.pid)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        port = os.environ.get("PORT", "8000")
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
            self.spawn(name, argv)
        banner = (
            f"console: http://127.0.0.1:{port}/  login: admin / {password}"
            "  (Ctrl-C stops everything)"
        )
        emit("stack", banner)
        print(f"\n  {banner}\n", file=sys.stderr, flush=True)
        try:
            while not self.stopping:
                time.sleep(0.5)
                self.restart_dead(specs)
        except KeyboardInterrupt:
            pass
        self.stop()
        return 0

    def restart_dead(self, specs: dict[str, list[str]]) -> None:
        for name, child in list(self.children.items()):
            code = child.poll()
            if code is not None and not self.stopping:
                emit(
                    "stack",
                    f"{name} exited with {code}; restarting in 2 s",
                    level="warning",
                )
                time.sleep(2)
                self.spawn(name, specs[name])

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        emit("stack", "stopping: warm shutdown of every process")
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                emit("stack", f"{name} did not stop in time; killing", level="warning")
                os.killpg(child.pid, signal.SIGKILL)
        if self.redis is not None:
            self.redis.stop()
            emit("redis", "local server stopped (data kept in var/redis)")


def main() -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return Stack().run()


if __name__ == "__main__":
    raise SystemExit(main())
