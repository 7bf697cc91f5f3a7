"""The parts of jobs.tasks_backend that the public API cannot reach alone:
reading an exception's class path back from a recorded traceback, and the
priority mapping."""

from __future__ import annotations

import traceback

import pytest

from jobs.tasks_backend.backend import lane_for
from jobs.tasks_backend.results import WorkerLost, exception_path


class Outer:
    class Boom(Exception):
        pass


def formatted(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - any exception, formatted
        return "".join(traceback.format_exception(caught))


def chained() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise Outer.Boom("line one\\nTraceback (most recent call last):") from exc
    except Outer.Boom as caught:
        return "".join(traceback.format_exception(caught))


@pytest.mark.parametrize(
    ("text", "exc_type", "expected"),
    [
        (formatted(ValueError("x")), "ValueError", "builtins.ValueError"),
        (formatted(Outer.Boom("a: b")), "Boom", f"{__name__}.Outer.Boom"),
        (chained(), "Boom", f"{__name__}.Outer.Boom"),
        (formatted(RuntimeError()), "RuntimeError", "builtins.RuntimeError"),
        ("", "WorkerLost", f"{WorkerLost.__module__}.WorkerLost"),
        ("", "TimeoutError", "builtins.TimeoutError"),
        ("garbage", "", "builtins.Exception"),
    ],
)
def test_exception_class_path_is_read_from_the_traceback(text, exc_type, expected):
    assert exception_path(text, exc_type) == expected


def test_priority_maps_onto_three_lanes_in_order():
    assert [lane_for(p) for p in (-100, -1, 0, 1, 100)] == [
        "low",
        "low",
        "normal",
        "high",
        "high",
    ]
