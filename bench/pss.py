"""Proportional set size (PSS) of a process tree, read from /proc.

PSS charges each shared page to the processes that map it in equal parts, so
the PSS of a whole tree is what the tree costs the machine: forked children
that still share their parent's pages add little, where RSS would count those
pages once per process.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (all its threads' children)."""
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


def pss_kb(pid: int) -> int:
    """Pss of one process in kB (0 if it is gone)."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_kb(pid: int) -> tuple[int, int, int]:
    """(PSS, RSS, processes) of `pid`'s whole tree, in kB."""
    pids = tree(pid)
    return sum(map(pss_kb, pids)), sum(map(rss_kb, pids)), len(pids)
