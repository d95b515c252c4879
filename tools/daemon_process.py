"""The real ``buildtail run`` process as the end-to-end tests and the benchmarks drive it.

One child process per ``start()`` (a ``DaemonProcess`` can be restarted; its output files grow),
its stderr read line by line in a thread and time-stamped on arrival, so a test can wait for a log
line and a benchmark can measure when ``ready:`` reached it, with the interpreter's start-up and the
imports included (that is what an operator waits for).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["REPO", "SYSTEMD_ENV", "DaemonProcess"]

REPO = Path(__file__).resolve().parents[1]

# Set by systemd (or a developer's shell under it): a child that inherits them talks to the wrong
# socket. The tests of the notify protocol set the last three on purpose and keep them.
SYSTEMD_ENV = ("STATE_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class DaemonProcess:
    """``python -m daemon run --config <workdir>/<name>.yaml`` with captured, time-stamped output."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        *,
        token: str,
        name: str = "daemon",
        dry_run: bool = False,
        code: Path = REPO,
        python_args: Sequence[str] = ("-m", "daemon"),
        on_spawn: Callable[[int], None] | None = None,
        env_drop: Sequence[str] = ("STATE_DIRECTORY",),
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.token = token
        self.dry_run = dry_run
        self.code = code
        self.python_args = list(python_args)
        self.on_spawn = on_spawn  # called with the pid before the interpreter starts any thread
        self.env_drop = tuple(env_drop)
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / f"{name}.stderr.log"
        self.out_path = workdir / f"{name}.stdout.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.spawned_at = 0.0
        self.ready_at: float | None = None
        self.ready_line = ""
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._out: Any = None

    # --- starting and stopping -------------------------------------------------------------------

    def start(self, *, wait: bool = False, timeout: float = 20.0) -> DaemonProcess:
        self.runs += 1
        env = dict(os.environ, COMPASS_API_TOKEN=self.token, PYTHONUNBUFFERED="1")
        for var in self.env_drop:
            env.pop(var, None)
        cmd = [sys.executable, *self.python_args, "run", "--config", str(self.config_path)]
        if self.dry_run:
            cmd.append("--dry-run")
        self.ready_at = None
        self._out = open(self.out_path, "ab")  # noqa: SIM115 - open for the child's lifetime
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.code, env=env, stdout=self._out, stderr=subprocess.PIPE)
        if self.on_spawn is not None:
            self.on_spawn(self.proc.pid)
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-stderr", daemon=True)
        self._reader.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stderr:
                now = time.monotonic()
                line = raw.decode("utf-8", "replace")
                with self._lock:
                    if self.ready_at is None and "ready:" in line:
                        self.ready_at = now
                        self.ready_line = line.strip()
                    self._lines.append((now, line))
                log.write(raw)
                log.flush()

    def wait_ready(self, timeout: float = 20.0) -> float:
        """Seconds from spawning to the ``ready:`` line; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_at is not None:
                return self.ready_at - self.spawned_at
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._join_reader()
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.stderr}")
            time.sleep(0.002)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as systemd does; returns the exit status (killed after ``timeout``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.finish()
            raise
        self.finish()
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.finish()

    def finish(self) -> None:
        """The process has ended: the rest of its output is collected and the files closed."""
        self._join_reader()
        if self._out is not None:
            self._out.close()
            self._out = None

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.proc is not None and self.proc.stderr is not None and self.proc.poll() is not None:
            self.proc.stderr.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.stop()
        else:
            self.finish()

    # --- what it said ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ready_s(self) -> float:
        assert self.ready_at is not None
        return self.ready_at - self.spawned_at

    def lines(self) -> list[tuple[float, str]]:
        """Every stderr line of every run so far, with its arrival time (time.monotonic())."""
        with self._lock:
            return list(self._lines)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(line for _, line in self._lines)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def log_tail(self, n: int = 40) -> str:
        return "".join(line for _, line in self.lines()[-n:])

    def errors(self) -> list[str]:
        return [line.strip() for _, line in self.lines() if " ERROR " in line or " CRITICAL " in line]
