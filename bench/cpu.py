"""CPU seconds (user + sys) of process trees, read from /proc, for who-paid-what per phase."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants (nginx: master and workers)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)], cpu[int(entry)] = stat
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used by named process trees (and by this process, as "harness") over a phase."""

    def __init__(self, roots: Mapping[str, int | None]) -> None:
        self._roots = {name: pid for name, pid in roots.items() if pid is not None}

    def _sample(self) -> dict[str, float]:
        sample = {name: tree_cpu_s(pid) for name, pid in self._roots.items()}
        sample["harness"] = self_cpu_s()
        return sample

    @contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        before = self._sample()
        try:
            yield
        finally:
            after = self._sample()
            into.update({name: round(after[name] - before[name], 2) for name in after})
