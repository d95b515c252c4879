"""The machine and the code measured: CPU, memory, kernel, file system, the commit, and the baselines a
figure is read against (a bare ``find``, a bare interpreter start with the daemon's imports).

The daemon processes run from this checkout, or from a snapshot given with $BUILDTAIL_BENCH_CODE (e.g.
``git archive HEAD | tar -x -C DIR``), so a working tree in the middle of an edit can be left alone.
The scripts that run the daemon's code in their own process (B5's scan, B7, ``profiling.py scan``)
import it as Python finds it: the checkout the virtual environment installs, or ``PYTHONPATH=DIR``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import median

REPO = Path(__file__).resolve().parents[1]
# the code the daemon processes run (see above)
CODE = Path(os.environ.get("BUILDTAIL_BENCH_CODE") or REPO).resolve()


def code_version() -> str:
    """The commit measured, and whether the working tree had uncommitted changes."""
    if CODE != REPO:
        rev = CODE / ".bench-rev"
        return f"snapshot {rev.read_text().strip() if rev.exists() else CODE.name}"
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "daemon", "parsers"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return rev + (" + uncommitted changes in daemon/ or parsers/" if dirty else "")


def _filesystem_of(path: Path) -> str:
    best = ("", "?", "?")
    p = str(path.resolve())
    with open("/proc/mounts") as fh:
        for line in fh:
            dev, mnt, fstype = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return f"{best[1]} ({best[2]} on {best[0]})"


def machine_info(tmp: Path | None = None) -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": _filesystem_of(tmp or Path(tempfile.gettempdir())),
        "code": code_version(),
    }


def time_find(home: Path, repeats: int = 3) -> tuple[float, int]:
    """Median wall time of ``find <home> -name build.xml`` (output discarded) and its match count."""
    times = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run(["find", str(home), "-name", "build.xml"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.monotonic() - t0)
    out = subprocess.run(["find", str(home), "-name", "build.xml"], capture_output=True, check=True).stdout
    return median(times), out.count(b"\n")


def python_start_baseline(repeats: int = 3) -> float:
    """Wall time of a bare interpreter start that imports the daemon's modules (no work)."""
    times = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import daemon.cli, daemon.service"], cwd=CODE, check=True)
        times.append(time.monotonic() - t0)
    return median(times)
