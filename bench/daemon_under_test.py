"""The real daemon process as the benchmarks run it: its configuration (rate budget off), what they read
of it, its ``ready:`` line, and the fake Compass it sends to."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import CODE
from bench.procfs import count_inotify_watches, cpu_seconds, pin_threads, proc_status_kb
from tools.daemon_process import SYSTEMD_ENV, DaemonProcess
from tools.fake_compass import FakeCompass

TOKEN = "bench-token-not-a-secret"


class Daemon(DaemonProcess):
    """The real daemon process (``tools/daemon_process.py``) plus what the benchmarks read of it:
    /proc figures, an optional core of its own, and py-spy sampling from ``ready`` on.

    ``ready_s`` is the time from just before the process is spawned to the moment its ``ready:`` log
    line reaches us (interpreter start and imports included: that is what an operator waits for).
    """

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        name: str = "daemon",
        python_args: Sequence[str] = ("-m", "daemon"),
        cpus: set[int] | None = None,
    ) -> None:
        pin = (lambda pid: pin_threads(pid, cpus)) if cpus else None
        super().__init__(
            workdir,
            config,
            token=TOKEN,
            name=name,
            code=CODE,
            python_args=python_args,
            on_spawn=pin,
            env_drop=SYSTEMD_ENV,
        )
        self.cpus = cpus
        self._pyspy: subprocess.Popen[bytes] | None = None

    def wait_ready(self, timeout: float = 120.0) -> float:
        try:
            ready = super().wait_ready(timeout)
        except AssertionError as exc:
            raise RuntimeError(str(exc)) from None
        self._maybe_profile()
        return ready

    def _maybe_profile(self) -> None:
        """With $BUILDTAIL_BENCH_PYSPY=DIR, py-spy samples the daemon from ready until it exits
        (collapsed stacks in DIR/<name>.pyspy.txt; see bench/profiling.py)."""
        out_dir = os.environ.get("BUILDTAIL_BENCH_PYSPY")
        if not out_dir or self._pyspy is not None:
            return
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        out = Path(out_dir) / f"{self.name}.pyspy.txt"
        cmd = [pyspy, "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", str(out)]
        self._pyspy = subprocess.Popen(
            [*cmd, "--pid", str(self.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.3)  # let it attach

    def rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return proc_status_kb(self.pid, "VmHWM") / 1024

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def inotify_watches(self) -> int:
        return count_inotify_watches(self.pid)

    def stop(self, timeout: float = 60.0) -> int:
        try:
            return super().stop(timeout)
        except subprocess.TimeoutExpired:
            assert self.proc is not None
            return self.proc.returncode

    def finish(self) -> None:
        if self._pyspy is not None:
            try:
                self._pyspy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._pyspy.kill()
            self._pyspy = None
        super().finish()

    def __enter__(self) -> Daemon:
        self.start()
        return self


def make_config(
    tmp: Path,
    home: Path,
    compass: FakeCompass | None,
    *,
    state_dir: Path | None = None,
    log_level: str = "info",
    **source: Any,
) -> dict[str, Any]:
    """The keys of tests/e2e/conftest.make_config, with the rate budget off (limit 0, burst 1).

    Unlike the e2e tests, the reconcile interval keeps its default (5 min) unless given: a 2 s
    reconcile on a 100,000-build home would be a benchmark of the reconcile scan.
    """
    cfg: dict[str, Any] = {
        "host": "build01.example.com",
        "state_dir": str(state_dir or tmp / "state"),
        "log_level": log_level,
        "sources": [
            {
                "type": "jenkins",
                "home": str(home),
                "url": "https://jenkins.example.com/",
                **source,
            }
        ],
    }
    if _supports_metrics():  # port 0: the kernel picks a free one when the daemon binds, so
        # daemons started together never collide (a port chosen here could be taken by then)
        cfg["metrics"] = {"listen": "127.0.0.1:0"}
    if compass is not None:
        cfg["compass"] = {
            "base_url": compass.base_url,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "api_token": "${COMPASS_API_TOKEN}",
            "timeout": "10s",
            "rate_limit_per_minute": 0,  # pacing off: the benchmarks measure buildtail, not the budget
            "burst": 1,
        }
    return cfg


def _supports_metrics() -> bool:
    """Whether this checkout's configuration has a ``metrics`` section (it listens by default)."""
    from daemon.config import Settings

    return "metrics" in getattr(Settings, "model_fields", {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_compass(*, defer_validation: bool = False) -> FakeCompass:
    return FakeCompass(token=TOKEN, defer_validation=defer_validation)


_RE_READY = re.compile(r"ready: (\d+) job\(s\) in \d+ source\(s\), (\d+) run\(s\) in progress, (\d+) watch")


def parse_ready(line: str) -> tuple[int, int, int] | None:
    """(jobs, runs in progress, watches) from the daemon's ``ready:`` line."""
    m = _RE_READY.search(line)
    return None if m is None else (int(m[1]), int(m[2]), int(m[3]))
