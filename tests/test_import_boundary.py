"""Only jobs/backend/ talks to RQ and Redis (docs/architecture.md): every other
module of the app and of the reference project goes through it and catches
its errors, so an RQ or redis-py upgrade is a change to one package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "jobs" / "backend"
FORBIDDEN = {"rq", "rq_scheduler", "django_rq", "redis"}
IMPORTERS = {"import_module", "__import__"}


def forbidden_imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each import of a FORBIDDEN package in `source`,
    wherever it is (module level, a function, a TYPE_CHECKING block), and for
    importlib.import_module("...") / __import__("...") with a literal name."""
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else None
            called = func.id if isinstance(func, ast.Name) else called
            first = node.args[0]
            if called in IMPORTERS and isinstance(first, ast.Constant):
                names = [str(first.value)]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                yield getattr(node, "lineno", 0), name


def python_files() -> list[Path]:
    return sorted(
        path
        for folder in ("jobs", "console")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_only_the_backend_imports_rq_and_redis() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in python_files()
        if BACKEND not in path.parents
        for line, name in forbidden_imports(path.read_text())
    ]
    assert offenders == [], "import these through jobs.backend:\n" + "\n".join(
        offenders
    )


def test_the_walk_sees_the_backend_importing_them() -> None:
    """The check reads the files it means to: the backend's imports show."""
    found = {
        name.split(".")[0]
        for path in python_files()
        if BACKEND in path.parents
        for _line, name in forbidden_imports(path.read_text())
    }
    assert found == FORBIDDEN


def test_every_kind_of_import_is_caught() -> None:
    source = "\n".join(
        [
            "import os",
            "import redis",
            "from rq.job import Job",
            "def later():",
            "    import django_rq.queues",
            "if TYPE_CHECKING:",
            "    from rq_scheduler import Scheduler",
            "importlib.import_module('redis.sentinel')",
            "__import__('rq')",
            "from . import redis",
            "import redisearch",
        ]
    )
    assert sorted(forbidden_imports(source)) == [
        (2, "redis"),
        (3, "rq.job"),
        (5, "django_rq.queues"),
        (7, "rq_scheduler"),
        (8, "redis.sentinel"),
        (9, "rq"),
    ]
