"""The real ``buildtail run`` process against a local fake Compass and a Jenkins-like writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-T0KEN-never-logged"


class Daemon:
    """One ``buildtail run`` child process with its own config, state and captured output."""

    def __init__(self, tmp: Path, config: dict[str, Any], *, dry_run: bool = False) -> None:
        self.tmp = tmp
        self.config_path = tmp / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.dry_run = dry_run
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.stdout_path = tmp / "stdout.log"
        self.stderr_path = tmp / "stderr.log"

    def start(self, *, wait: bool = True) -> Daemon:
        self.runs += 1
        env = dict(os.environ, COMPASS_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
        env.pop("STATE_DIRECTORY", None)
        cmd = [sys.executable, "-m", "daemon", "run", "--config", str(self.config_path)]
        if self.dry_run:
            cmd.append("--dry-run")
        self._out = open(self.stdout_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._err = open(self.stderr_path, "ab")  # noqa: SIM115
        self._ready_mark = self.stderr.count("ready:")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._out, stderr=self._err)
        if wait:
            self.wait_ready()
        return self

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr.count("ready:") > self._ready_mark:
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"buildtail exited with {self.proc.returncode}:\n{self.stderr}")
            time.sleep(0.02)
        raise AssertionError(f"buildtail not ready after {timeout}s:\n{self.stderr}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        finally:
            self._close()
        return rc

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        self._out.close()
        self._err.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def compass() -> Iterator[FakeCompass]:
    with FakeCompass(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def home(tmp_path: Path) -> JenkinsHome:
    return JenkinsHome(tmp_path / "jenkins")


def make_config(tmp: Path, home: JenkinsHome, compass: FakeCompass | None, **source: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "host": "build01.example.com",
        "state_dir": str(tmp / "state"),
        "log_level": "debug",
        "metrics": {"listen": "127.0.0.1:0"},  # a free port each time: daemons never collide
        "sources": [
            {
                "type": "jenkins",
                "home": str(home.root),
                "url": "https://jenkins.example.com/",
                "reconcile_interval": "2s",
                **source,
            }
        ],
    }
    if compass is not None:
        cfg["compass"] = {
            "base_url": compass.base_url,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "api_token": "${COMPASS_API_TOKEN}",
            "timeout": "3s",
            "rate_limit_per_minute": 6000,  # the budget has its own tests; here it only slows things down
            "burst": 100,
        }
    return cfg


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def factory(config: dict[str, Any], *, dry_run: bool = False, start: bool = True) -> Daemon:
        d = Daemon(tmp_path, config, dry_run=dry_run)
        started.append(d)
        if start:
            d.start()
        return d

    yield factory
    for d in started:
        if d.alive():
            d.kill()
    for d in started:
        assert TOKEN not in d.stderr and TOKEN not in d.stdout, "the API token leaked into the output"
