"""The real Service in process: when watchdog's reader thread ends unasked, a new one takes over and
the next build arrives as quickly as before, without a restart of the process."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.service import Service
from daemon.sinks import SendResult
from tools.fake_jenkins import JenkinsHome

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")


class Accepting:
    """Stands where Compass's HTTP API would: keeps every body and accepts it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def send(self, body: dict[str, Any]) -> SendResult:
        self.bodies.append(body)
        return SendResult("accepted", 202, "")

    async def close(self) -> None:
        return None

    def states(self, pipeline_id: str) -> list[str]:
        return [
            b["event"]["build"]["buildProperties"]["state"]
            for b in self.bodies
            if b["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"] == pipeline_id
        ]


async def _until(what: str, predicate: Callable[[], bool], within: float = 10.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_reader_thread_that_ends_is_replaced_and_builds_keep_arriving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    job.start().finish("SUCCESS")
    settings = Settings.model_validate(
        {
            "host": "ci.example.com",
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(home.root), "reconcile_interval": "1h"}],
            "compass": {
                "base_url": "https://compass.invalid/gateway/api",
                "cloud_id": "cloud",
                "email": "ci@example.com",
                "api_token": "not-used",
                "rate_limit_per_minute": 0,
            },
        }
    )
    compass = Accepting()
    service = Service(settings, transport=compass)
    await service.startup()
    loop_task = asyncio.create_task(service.main_loop())
    try:
        reader = service.reader
        assert reader is not None and reader.count == 1
        old = reader._fd
        assert old is not None
        old.stop()  # what watchdog's dispatcher does when a callback raises: the thread ends
        await _until("a new reader thread", lambda: reader._fd is not old and reader.alive)
        await _until("the watches added again", lambda: reader.count == 1)
        started = time.monotonic()
        job.start().finish("FAILURE")
        await _until("app#2 delivered", lambda: "FAILED" in compass.states("app#2"), within=3.0)
        print(f"app#2 arrived {(time.monotonic() - started) * 1000:.0f} ms after it finished")
        stops = service.metrics.registry.get_sample_value("buildtail_inotify_reader_stops_total")
        assert stops == 1
        assert service.health.healthy() == (True, "ok")
        stopped = [r for r in caplog.records if "the inotify reader stopped" in r.getMessage()]
        assert len(stopped) == 1, "said once"
    finally:
        service.request_exit()
        await loop_task
        await service.shutdown()
