"""A local Redis primary, a replica and three Sentinels, for tests and chaos.

Every process listens on 127.0.0.1 on a free port, with its files in one
directory. Sentinel's timings are small (`down_after_ms`) so that a failover
takes seconds; the real ones are a deployment's choice. Like localredis, it
imports nothing from Django.
"""

from __future__ import annotations

import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.localredis import LocalRedis, LocalRedisError, free_port, server_binary
from jobs.backend.client import Client
from jobs.backend.errors import BackendError

MASTER_NAME = "mymaster"
REPLICATION_USER = "replication"


@dataclass
class LocalServer(LocalRedis):
    """A LocalRedis with extra arguments (a replica's `--replicaof`)."""

    extra: list[str] = field(default_factory=list)
    #: redis-server or valkey-server (by default the one localredis finds).
    binary: str = ""

    def command(self) -> list[str]:
        binary = self.binary or server_binary()
        return [binary, *super().command()[1:], *self.extra]

    def client(self) -> Client:
        return Client(port=self.port, password=self.password, socket_timeout=2)

    def keys(self, pattern: str) -> set[bytes]:
        return set(self.client().keys(pattern))  # type: ignore[arg-type]


@dataclass
class LocalSentinel(LocalRedis):
    """One Sentinel process, configured by a file it rewrites itself."""

    conf_lines: list[str] = field(default_factory=list)
    binary: str = ""

    def command(self) -> list[str]:
        conf = self.directory / "sentinel.conf"
        if not conf.exists():  # a restart keeps what Sentinel learnt
            conf.write_text("\n".join(self.conf_lines) + "\n")
        return [self.binary or server_binary(), str(conf), "--sentinel"]

    def client(self) -> Client:
        return Client(port=self.port, password=self.password, socket_timeout=2)


@dataclass
class SentinelGroup:
    """Primary + replica + three sentinels (quorum 2)."""

    directory: Path
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    #: The server binary for every process (redis-server, valkey-server).
    binary: str = ""
    master_name: str = MASTER_NAME
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    sentinel_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    servers: list[LocalServer] = field(default_factory=list)
    sentinels: list[LocalSentinel] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        primary = self._server("primary", [])
        primary.start()
        replica = self._server(
            "replica", ["--replicaof", "127.0.0.1", str(primary.port)]
        )
        replica.start()
        self.servers = [primary, replica]
        _wait(lambda: self._link_up(replica), timeout, "replica never synced")
        for number in range(3):
            sentinel = self._sentinel(number, primary.port)
            sentinel.start()
            self.sentinels.append(sentinel)
        _wait(self._sentinels_ready, timeout, "sentinels never found each other")
        return self

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.stop(kill=True)

    # -- what the app is given -------------------------------------------------

    @property
    def sentinel_list(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": self.sentinel_list,
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "REDIS_PASSWORD": self.password,
        }

    def settings(self) -> dict[str, Any]:
        env = self.env()
        return {
            "REDIS_URL": "",
            "REDIS_SENTINELS": env["REDIS_SENTINELS"],
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_SENTINEL_PASSWORD": self.sentinel_password,
            "REDIS_PASSWORD": self.password,
        }

    # -- failover --------------------------------------------------------------

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says."""
        for sentinel in self.sentinels:
            try:
                # redis-py 7 and 8 type these replies differently: read as Any.
                found: Any = sentinel.client().sentinel_get_master_addr_by_name(
                    self.master_name
                )
            except BackendError:
                continue
            if found:
                return int(found[1])
        return None

    def server_on(self, port: int) -> LocalServer:
        return next(s for s in self.servers if s.port == port)

    def primary(self) -> LocalServer:
        port = self.primary_port()
        if port is None:
            raise LocalRedisError("no sentinel names a primary")
        return self.server_on(port)

    def kill_primary(self) -> int:
        """SIGKILL the primary; returns its port."""
        server = self.primary()
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        return server.port

    def wait_for_failover(self, old_port: int, timeout: float = 60.0) -> int:
        """The new primary's port once every sentinel names it and it says it
        is a primary."""

        def promoted() -> int | None:
            ports = set()
            for sentinel in self.sentinels:
                try:
                    found: Any = sentinel.client().sentinel_get_master_addr_by_name(
                        self.master_name
                    )
                except BackendError:
                    return None
                ports.add(int(found[1]) if found else None)
            if len(ports) != 1 or old_port in ports or None in ports:
                return None
            port = int(ports.pop() or 0)
            return port if self._role(self.server_on(port)) == "master" else None

        return int(_wait(promoted, timeout, "no failover"))

    def block_replication(self) -> None:
        """The replica gets no more writes, so a kill now loses what was
        written since: asynchronous replication's window, made wide on
        purpose. The replica's user is switched off and its link cut: it
        cannot log in again; every other client goes on as before."""
        primary = self.primary()
        client = primary.client()
        client.execute_command("ACL", "SETUSER", REPLICATION_USER, "off")
        client.client_kill_filter(_type="slave")
        _wait(lambda: not self._link_up(self.replica()), 10, "the link held")

    def replica(self) -> LocalServer:
        primary = self.primary()
        return next(s for s in self.servers if s is not primary)

    # -- parts -----------------------------------------------------------------

    def _server(self, name: str, extra: list[str]) -> LocalServer:
        return LocalServer(
            binary=self.binary,
            directory=self.directory / name,
            port=free_port(),
            password=self.password,
            extra=[
                # The replica logs in as its own user, so that replication
                # can be cut alone (block_replication) in tests and chaos.
                *("--user", REPLICATION_USER, "on", f">{self.password}"),
                *("allcommands", "allkeys", "allchannels"),
                *("--masteruser", REPLICATION_USER, "--masterauth", self.password),
                *extra,
            ],
        )

    def _sentinel(self, number: int, primary_port: int) -> LocalSentinel:
        port = free_port()
        directory = self.directory / f"sentinel-{number}"
        directory.mkdir(parents=True, exist_ok=True)
        name = self.master_name
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {directory}",
            f"logfile {directory / 'server.log'}",
            f"requirepass {self.sentinel_password}",
            # The sentinels find each other through the primary and must log
            # in to one another with the same password.
            f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel monitor {name} 127.0.0.1 {primary_port} 2",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        return LocalSentinel(
            binary=self.binary,
            directory=directory,
            port=port,
            password=self.sentinel_password,
            conf_lines=lines,
        )

    @staticmethod
    def _info(server: LocalServer) -> dict[str, Any]:
        info: Any = server.client().info("replication")
        return dict(info)

    def _role(self, server: LocalServer) -> str:
        return str(self._info(server).get("role"))

    def _link_up(self, replica: LocalServer) -> bool:
        return bool(self._info(replica).get("master_link_status") == "up")

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            peers: Any = client.sentinel_sentinels(self.master_name)
            if len(peers) < 2:
                return False
            if not client.sentinel_slaves(self.master_name):
                return False
        return True


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except BackendError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise LocalRedisError(what)
