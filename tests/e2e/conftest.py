"""The real ``buildtail run`` process against a local fake Compass and a Jenkins-like writer."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.daemon_process import REPO, DaemonProcess
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

__all__ = ["REPO", "TOKEN", "Daemon", "drained", "make_config", "metric", "wait_until"]

TOKEN = "s3cr3t-T0KEN-never-logged"


class Daemon(DaemonProcess):
    """One ``buildtail run`` child process with its own config, state and captured output; ``start``
    waits for ``ready:`` unless told otherwise."""

    def __init__(
        self, tmp: Path, config: dict[str, Any], *, name: str = "daemon", dry_run: bool = False
    ) -> None:
        super().__init__(tmp, config, token=TOKEN, name=name, dry_run=dry_run)

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> Daemon:
        super().start(wait=wait, timeout=timeout)
        return self


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def metric(daemon: Daemon, name: str) -> float:
    """A sample of the daemon's /metrics, summed over its labels (0 before the first)."""
    ports = re.findall(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", daemon.stderr)
    assert ports, daemon.stderr
    with urllib.request.urlopen(f"{ports[-1]}/metrics", timeout=5) as resp:  # this start's port
        text = resp.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def drained(daemon: Daemon, timeout: float = 10.0) -> None:
    """Until every event the daemon has queued is answered. Called once it is ready (its start read
    everything there was to read before READY), this is "anything a restart would send again has
    been sent": what stands in for a moment's wait to see that nothing more arrives."""
    wait_until(lambda: metric(daemon, "buildtail_queue_depth") == 0, timeout, "an empty queue")


@pytest.fixture
def compass_options() -> dict[str, Any]:
    """The real daemon process reads its token from the environment this package gives it."""
    return {"token": TOKEN}


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
        d = Daemon(tmp_path, config, name=f"daemon-{len(started) + 1}", dry_run=dry_run)
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
