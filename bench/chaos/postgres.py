"""A private PostgreSQL server for the chaos run: initdb in the run's own
directory, a free loopback port, trust auth, stopped and removed with it.

Never the machine's shared server: the database-outage scenario stops this
one. PostgreSQL refuses to run as root, so as root its commands run as the
`postgres` system user (which Debian's package creates), in a directory that
user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.localredis import free_port

#: Debian's layout; the highest version installed wins.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
DATABASE = "chaos"


class PostgresUnavailable(RuntimeError):
    pass


def binaries() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    versions = sorted(
        DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: `make chaos` installs Debian's"
        " postgresql package (or: apt-get install postgresql)"
    )


@dataclass
class PrivatePostgres:
    directory: Path
    port: int
    #: listen_addresses (the host-cut scenario adds its subnet's address).
    listen: str = "127.0.0.1"

    @classmethod
    def create(cls, parent: Path) -> PrivatePostgres:
        server = cls(directory=parent / "postgres", port=free_port())
        server.directory.mkdir()
        if os.geteuid() == 0:
            # The run's directory stays root's; the server's user may only
            # pass through it to its own.
            parent.chmod(0o711)
            account = pwd.getpwnam(SERVER_USER)
            os.chown(server.directory, account.pw_uid, account.pw_gid)
        server._run(
            "initdb",
            "--pgdata",
            str(server.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",  # a throwaway cluster: no need to fsync its creation
        )
        return server

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        options = (
            f"-c listen_addresses={self.listen} -c port={self.port}"
            " -c unix_socket_directories=''"
        )
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.directory / "server.log"),
            "--options",
            options,
            "--wait",
            "--timeout",
            "60",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back and disconnects clients; `immediate` is a crash
        (recovery from the write-ahead log on the next start)."""
        self._run(
            "pg_ctl",
            "stop",
            "--pgdata",
            str(self.data),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            "60",
        )

    def allow(self, subnet: str) -> None:
        """Let clients of `subnet` in, as on loopback (trust: a throwaway
        cluster); read at the next start."""
        hba = self.data / "pg_hba.conf"
        line = f"host all all {subnet} trust"
        if line not in hba.read_text().splitlines():
            with hba.open("a") as conf:
                conf.write(f"{line}\n")

    def version(self) -> str:
        return (self.data / "PG_VERSION").read_text().strip()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self) -> None:
        import psycopg

        admin = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def _run(self, program: str, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            kwargs = {"user": SERVER_USER, "group": SERVER_USER, "extra_groups": []}
        done = subprocess.run(
            [str(binaries() / program), *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{program} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )
