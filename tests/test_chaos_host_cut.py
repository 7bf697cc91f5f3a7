"""The host-cut chaos scenario where network namespaces cannot be made: it
says SKIP and why, and a SKIP fails no run (bench/chaos/host_cut.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos.host_cut import host_cut
from bench.chaos.netns import why_unavailable
from bench.chaos.outcome import Outcome, report
from bench.chaos.sizes import Sizes


def test_without_root_the_host_cut_scenario_skips_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the OS's answer, not root
    assert why_unavailable() is not None

    outcome = host_cut(tmp_path, None, None, Sizes.of(True))  # type: ignore[arg-type]

    assert outcome.result == "SKIP"
    assert "not root" in outcome.skipped
    assert outcome.line().startswith("SKIP  ")
    text = report([outcome], True, [])
    assert f"| {outcome.name} | SKIP |" in text
    assert "- skipped: not root" in text


def test_a_scenario_that_ran_is_never_reported_as_skipped() -> None:
    ran = Outcome("ran")
    ran.check("something held", False)
    assert ran.result == "FAIL"
    ran.checks = [("something held", True)]
    assert ran.result == "PASS"
