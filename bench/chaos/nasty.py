"""Random submissions for the bad-input scenario: mostly wrong, some right,
all reproducible from one seed.

Each field is left out, well-formed, or one of the values that break
services in practice: wrong types, NUL bytes and lone surrogates (which
PostgreSQL refuses), NaN and infinities, huge and deeply nested values.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

TEXTS = [
    "",
    " ",
    "x",
    "ünïcödé ✓",
    "\x00",
    "a\x00b",
    "\ud800",
    "😀" * 5,
    "\u202eevil",
    "<script>alert(1)</script>",
    "'; DROP TABLE jobs_jobrecord; --",
    "%s%s%n",
    "{{ 7|add:7 }}",
    "\n\r\t",
    "null",
    "NaN",
    "1e999",
    "-0",
    "default",
    "demo.echo ",
    "DEMO.ECHO",
    "../../etc/passwd",
    "a" * 300,
]
NUMBERS: list[Any] = [
    0,
    -1,
    1,
    0.5,
    -0.0,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    2**63,
    -(2**63) - 1,
    10**30,
    True,
    False,
    3600,
    3601,
    366 * 24 * 3600,
    366 * 24 * 3600 + 1,
]
#: Raw API bodies that are not a JSON object at all.
BODIES = [
    b"",
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b"\xff\xfe\x00",
    b"{" * 5000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"task": "demo.echo", "payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"x" * 1_200_000,
]


def example(schema: type[BaseModel]) -> dict[str, Any] | None:
    """A smallest valid payload for a task's schema, or None if not derivable."""
    spec = schema.model_json_schema()
    payload: dict[str, Any] = {}
    for name in spec.get("required", []):
        field = spec["properties"].get(name, {})
        kind = field.get("type")
        low = field.get("minimum", 0)
        payload[name] = {
            "integer": int(low),
            "number": float(low),
            "string": "x",
            "boolean": False,
        }.get(kind)
    try:
        schema.model_validate(payload)
    except ValueError:
        return None
    return payload


class Nasty:
    def __init__(self, seed: int, tasks: dict[str, dict[str, Any]], queues: list[str]):
        self.rng = random.Random(seed)
        self.tasks = tasks
        self.queues = queues
        self.accepted_ids: list[str] = []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def text(self) -> str:
        if self.chance(0.04):
            return "x" * self.rng.choice([1000, 100_001, 1_100_000])
        if self.chance(0.15):
            length = self.rng.randrange(8)
            return "".join(chr(self.rng.randrange(0x110000)) for _ in range(length))
        return self.rng.choice(TEXTS)

    def number(self) -> Any:
        if self.chance(0.3):
            return self.rng.uniform(-1e6, 1e6)
        return self.rng.choice(NUMBERS)

    def value(self, depth: int = 0) -> Any:
        kinds = ["none", "bool", "number", "text", "list", "dict"]
        kind = self.rng.choice(kinds[:4] if depth >= 3 else kinds)
        if kind == "none":
            return None
        if kind == "bool":
            return self.chance(0.5)
        if kind == "number":
            return self.number()
        if kind == "text":
            return self.text()
        if kind == "list":
            return [self.value(depth + 1) for _ in range(self.rng.randrange(4))]
        size = self.rng.randrange(4)
        return {self.text(): self.value(depth + 1) for _ in range(size)}

    def task(self) -> Any:
        if self.chance(0.75):
            return self.rng.choice(sorted(self.tasks))
        return self.value() if self.chance(0.3) else self.text()

    def payload(self, task: Any) -> Any:
        valid = self.tasks.get(task) if isinstance(task, str) else None
        if valid is None or self.chance(0.2):
            return self.value()
        payload = dict(valid)
        if self.chance(0.35):
            return payload  # as it should be
        key = self.rng.choice([*payload, self.text()]) if payload else self.text()
        if self.chance(0.2) and key in payload:
            del payload[key]
        else:
            payload[key] = self.value()
        return payload

    def run_at(self) -> Any:
        now = datetime.now(UTC)
        return self.rng.choice(
            [
                (now + timedelta(seconds=30)).isoformat(),
                (now - timedelta(days=1)).isoformat(),
                (now + timedelta(seconds=30)).replace(tzinfo=None).isoformat(),
                "9999-12-31T23:59:59+00:00",
                "0001-01-01T00:00:00+00:00",
                "tomorrow",
                self.text(),
                self.number(),
            ]
        )

    def submission(self) -> dict[str, Any]:
        """One submission's fields, as the API takes them."""
        task = self.task()
        fields: dict[str, Any] = {"task": task, "payload": self.payload(task)}
        optional: dict[str, Callable[[], Any]] = {
            "queue": lambda: self.one_of(self.queues),
            "priority": lambda: self.one_of(["high", "normal", "low"]),
            "delay": lambda: self.number() if self.chance(0.8) else self.text(),
            "run_at": self.run_at,
            "depends_on": self.depends_on,
            "idempotency_key": lambda: self.one_of([self.text()]),
            "retry": self.retry,
            "allow_failure": self.value,
        }
        for name, make in optional.items():
            if self.chance(0.15):
                fields[name] = make()
        return fields

    def one_of(self, good: list[Any]) -> Any:
        """Mostly one of the good values, else anything."""
        return self.rng.choice(good) if self.chance(0.6) else self.value()

    def depends_on(self) -> Any:
        if self.accepted_ids and self.chance(0.5):
            return self.rng.sample(self.accepted_ids, k=min(2, len(self.accepted_ids)))
        return [self.text()] if self.chance(0.5) else self.value()

    def retry(self) -> Any:
        if self.chance(0.2):
            return self.value()
        keys = ["max_attempts", "base", "factor", "cap", "jitter", "no_retry", "x"]
        return {
            self.rng.choice(keys): self.number() if self.chance(0.7) else self.value()
            for _ in range(self.rng.randrange(1, 4))
        }

    def raw_body(self) -> bytes | None:
        """Sometimes a body that is not a JSON object at all."""
        return self.rng.choice(BODIES) if self.chance(0.08) else None
