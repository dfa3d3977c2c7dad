"""CPU seconds a process tree has used, so a benchmark can say what bounds it: Azurite is
one Node.js event loop (at most one core, whatever the machine), and the host is one Python
process. Read from ``/proc`` (Linux); elsewhere the figures are None and the benchmark
reports rates alone."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system seconds) of one process, or None if it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu_seconds(root: int | None) -> float | None:
    """CPU seconds of ``root`` and every live descendant; None off Linux or without a pid."""
    if root is None or not _PROC.is_dir():
        return None
    stats: dict[int, tuple[int, float]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    if root not in stats:
        return None
    members: set[int] = {root}
    while grown := {pid for pid, (parent, _) in stats.items() if parent in members} - members:
        members |= grown
    return sum(stats[pid][1] for pid in members)
