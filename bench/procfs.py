"""What the benchmarks read of a process from /proc (RSS, CPU time, inotify watches), the cores
it runs on, and the page cache. Read from /proc directly, so nothing here needs psutil."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmRSS or VmHWM (peak RSS)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        data = fh.read()
    fields = data[data.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def count_inotify_watches(pid: int) -> int:
    """Watches on every inotify descriptor of the process (``inotify wd:`` lines of fdinfo)."""
    total = 0
    base = f"/proc/{pid}/fdinfo"
    for name in os.listdir(base):
        try:
            with open(f"{base}/{name}") as fh:
                total += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` restricted to ``cpus`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(harness CPUs, daemon CPUs): the daemon gets a core of its own, so the harness' own work
    (the Jenkins writer's threads, the fake Compass) does not queue in front of it. None with one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return set(cpus[:-1]), {cpus[-1]}


def drop_caches() -> bool:
    """Empties the page cache (root only): for --cold measurements."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False
