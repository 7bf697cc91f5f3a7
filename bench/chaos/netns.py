"""Worker hosts on one machine: Linux network namespaces joined to the server
side (the root namespace: Redis, the database, the monitor) by veth pairs on
a bridge, on the private subnet 10.77.0.0/24 (issue 20).

Made and removed with iproute2's `ip` by the scenario itself; a run that
died half-way leaves namespaces behind, so every start first removes those
with our prefix. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field

#: Every namespace and link this module makes starts with this (links are
#: limited to 15 characters).
PREFIX = "chaosnet"
BRIDGE = f"{PREFIX}0"
SERVER = "10.77.0.1"
SUBNET = "10.77.0.0/24"


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no `ip`)."""


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=False, timeout=30
    )
    if check and done.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def why_unavailable() -> str | None:
    """Why this machine cannot host the scenario, or None if it can."""
    if os.geteuid() != 0:
        return "not root: `ip netns add` needs CAP_SYS_ADMIN"
    if shutil.which("ip") is None:
        return "no `ip` on PATH (Debian's iproute2)"
    return None


def remove_stale() -> None:
    """Namespaces and the bridge a previous run left (ours by their prefix)."""
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith(f"{PREFIX}-"):
            ip("netns", "delete", name, check=False)
    if ip("link", "show", BRIDGE, check=False):
        ip("link", "delete", BRIDGE, check=False)


@dataclass
class Hosts:
    """`count` worker hosts, 10.77.0.11, .12, ... behind their own links."""

    count: int
    made: list[str] = field(default_factory=list)

    def namespace(self, n: int) -> str:
        return f"{PREFIX}-h{n}"

    def link(self, n: int) -> str:
        """The server side of host n's veth pair: the one cut and restored."""
        return f"{PREFIX}-v{n}"

    def address(self, n: int) -> str:
        return f"10.77.0.{10 + n}"

    def create(self) -> Hosts:
        reason = why_unavailable()
        if reason:
            raise NetnsUnavailable(reason)
        remove_stale()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SERVER}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for n in range(1, self.count + 1):
            ns = self.namespace(n)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "add", self.link(n), "type", "veth", "peer", "eth0", "netns", ns)
            ip("link", "set", self.link(n), "master", BRIDGE, "up")
            inside = ("-n", ns)
            ip(*inside, "addr", "add", f"{self.address(n)}/24", "dev", "eth0")
            ip(*inside, "link", "set", "eth0", "up")
            ip(*inside, "link", "set", "lo", "up")
        return self

    def reaches_server(self, n: int, port: int) -> bool:
        """Can host n open a TCP connection to the server side's `port`?"""
        probe = (
            "import socket,sys;"
            f"socket.create_connection(({SERVER!r},{port}),timeout=2).close()"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace(n), "python3", "-c", probe],
            capture_output=True,
            check=False,
            timeout=30,
        )
        return done.returncode == 0

    def run_in(self, n: int, argv: list[str]) -> list[str]:
        """`argv` as a process of host n."""
        return ["ip", "netns", "exec", self.namespace(n), *argv]

    def cut(self, n: int) -> None:
        ip("link", "set", self.link(n), "down")

    def restore(self, n: int) -> None:
        ip("link", "set", self.link(n), "up")

    def remove(self) -> None:
        """Everything made here (the veth pairs go with their namespaces)."""
        for ns in self.made:
            with contextlib.suppress(NetnsUnavailable, subprocess.SubprocessError):
                ip("netns", "delete", ns, check=False)
        self.made.clear()
        with contextlib.suppress(NetnsUnavailable, subprocess.SubprocessError):
            ip("link", "delete", BRIDGE, check=False)
