"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path
from typing import Any

import celery
import django
import rq

from console.localredis import server_binary


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def server_version(client: Any) -> str:
    info = client.info("server")
    if info.get("valkey_version"):
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def describe(client: Any) -> list[tuple[str, str]]:
    return [
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("cpu", cpu_model()),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("server", f"{server_version(client)} ({server_binary()}), AOF everysec"),
        ("database", f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"),
        (
            "rq / celery / django",
            f"rq {rq.__version__} / Celery {celery.__version__} "
            f"/ Django {django.get_version()}",
        ),
    ]
