"""What a proxy process costs, read from /proc: CPU seconds used and peak memory.

    /proc/<pid>/stat     fields 14 and 15 (utime, stime) in clock ticks: CPU time
                         spent in user space and in the kernel on its behalf
    /proc/<pid>/status   VmHWM: the "high water mark" of resident memory, the
                         most RAM the process ever held at once

CPU per request is a delta: read before a phase, read after, divide by the
requests the phase completed. VmHWM needs no delta — it only ever grows.
"""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return utime / TICKS, stime / TICKS


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    raise ValueError(f"no VmHWM for pid {pid}")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {role: cpu_seconds(pid) for role, pid in pids.items()}


def cpu_split_snapshot(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    return {role: cpu_split(pid) for role, pid in pids.items()}
