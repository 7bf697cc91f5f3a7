"""Set-up from nothing: a private Redis-compatible server, SQLite file, Django.

Nothing here may import Django models at module level: the environment
variables must be in place before the settings are read.
"""

from __future__ import annotations

import compileall
import logging
import os
import secrets
from pathlib import Path

from console.localredis import LocalRedis, free_port

#: The packages whose bytecode the bench compiles ahead (site-packages has its
#: own, written by pip).
PACKAGES = ("console", "jobs", "bench")


def compile_bytecode(base: Path) -> None:
    """Write the project's bytecode ahead, as the Docker image does: with
    PYTHONDONTWRITEBYTECODE set and no bytecode on disk, every worker would
    compile the project's modules again as it starts, and keep the heap
    that compiling grew (about 0.5 MB of figure 5)."""
    for package in PACKAGES:
        compileall.compile_dir(base / package, quiet=1)


def start_server(directory: Path) -> LocalRedis:
    """A server with AOF on (everysec), on a free port, data in `directory`."""
    return LocalRedis(directory=directory / "redis", port=free_port()).start()


def setup_django(
    directory: Path, redis_url: str, database_url: str | None = None
) -> None:
    """Point the settings at our server and database (by default a SQLite
    file in `directory`), then migrate. Measured as production runs, also
    when started by hand as the README shows (the Makefile sets the same):
    DEBUG off and a throwaway key, never the dev stack's settings."""
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", f"bench-only-{secrets.token_urlsafe(40)}")
    os.environ["REDIS_URL"] = redis_url
    os.environ["DATABASE_URL"] = (
        database_url or f"sqlite:///{directory / 'bench.sqlite3'}"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    os.environ.setdefault("PROCESS_NAME", "bench")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def log_to_file(path: Path) -> None:
    """Keep the JSON log lines (levels as configured) out of the table.

    They are still formatted and written, to a file, as in production.
    """
    stream = path.open("a", encoding="utf-8")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def quiet_rq() -> None:
    """Workers log at WARNING: measure jobs, not log I/O (both sides alike)."""
    for name in ("rq", "rq.worker", "rq.job", "rq.queue"):
        logging.getLogger(name).setLevel(logging.WARNING)


#: Warnings a figure causes on purpose (the crash-recovery figure kills workers).
EXPECTED = ('"msg": "recovered a job from a lost worker"',)


def log_problems(path: Path, limit: int = 5) -> list[str]:
    """The first warning or error lines the run logged (none expected)."""
    if not path.exists():
        return []
    levels = ('"level": "warning"', '"level": "error"', '"level": "critical"')
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [
        line
        for line in lines
        if any(lvl in line for lvl in levels)
        and not any(known in line for known in EXPECTED)
    ][:limit]


def log_problems_in(directory: Path, exclude: Path, limit: int = 5) -> list[str]:
    """The first warning or error lines of the processes' logs (*.log)."""
    found: list[str] = []
    for path in sorted(directory.glob("*.log")):
        if path != exclude:
            found += [f"{path.stem}: {line}" for line in log_problems(path, limit)]
    return found[:limit]


def log_tails(directory: Path, lines: int = 5) -> list[str]:
    """The last lines of every log of the run: what a failed run leaves to
    read once its directory is gone."""
    found: list[str] = []
    for path in sorted(directory.glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.stem}: {line}" for line in text.splitlines()[-lines:]]
    return found
