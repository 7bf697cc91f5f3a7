"""A private PostgreSQL server for one bench run: initdb in a temporary
directory, a free port on loopback, trust auth, removed at the end.

Never the machine's shared server: `make bench` needs no prior state and
leaves none. PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` system user (Debian's package creates it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from console.localredis import free_port

ROOT = Path("/usr/lib/postgresql")
USER = "postgres"
DATABASE = "bench"
#: Settings of a small production server; fsync stays on, as in production.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    pass


def binaries() -> Path:
    """The newest installed version's bin/ (initdb, pg_ctl)."""
    found = sorted(
        (p for p in ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(f"no PostgreSQL server binaries under {ROOT}")
    return found[-1]


def _as_owner() -> list[str]:
    """Run as `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root and no {USER!r} user") from None
    return ["runuser", "-u", USER, "--"]


@dataclass
class PrivatePostgres:
    """`with PrivatePostgres() as server:` gives `server.url`."""

    port: int = 0
    directory: Path | None = None

    @property
    def url(self) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*_as_owner(), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(args[0]).name} failed: {(done.stderr or done.stdout)[-800:]}"
            )

    def start(self) -> PrivatePostgres:
        bin_dir = binaries()
        # Outside the bench's own (root-only) temp dir: the server user must
        # be able to reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        data = self.directory / "data"
        data.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(USER)
            for path in (self.directory, data):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self.port = free_port()
        options = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
        }
        self._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "-o",
            " ".join(f"-c {k}={v}" for k, v in options.items()),
            "start",
        )
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        for _ in range(50):
            try:
                with psycopg.connect(
                    f"postgres://{USER}@127.0.0.1:{self.port}/postgres",
                    autocommit=True,
                ) as conn:
                    conn.execute(f"CREATE DATABASE {DATABASE}")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise PostgresUnavailable(f"no answer on port {self.port}")

    def stop(self) -> None:
        if self.directory is None:
            return
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run(str(binaries() / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
