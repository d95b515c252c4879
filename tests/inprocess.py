"""The real daemon in the test's own event loop: the ``Service`` (startup, its main loop as a task,
shutdown) with a scripted transport where Compass's HTTP API would be, and the real ``Loop`` for
tests that drive runners turn by turn. Used where the process is not what a test is about; the
tests of signals, systemd, kill -9 and upgrades keep the real process (``tests/e2e``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from daemon.config import Settings
from daemon.config.settings import MetricsSettings
from daemon.loop import Loop
from daemon.service import Service
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.watch import Hint
from daemon.store import Store
from tests.scripted import ScriptedTransport

__all__ = ["InProcess", "LossyQueue", "drain", "running", "settings_from", "turn_until", "until"]


async def until(what: str, predicate: Callable[[], bool], within: float = 10.0) -> float:
    """Seconds until ``predicate`` holds, giving the event loop a turn between looks."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def turn_until(loop: Loop, what: str, predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Turn the real loop (short waits) until ``predicate`` holds."""
    end = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await loop.turn(0.05)


def drain(store: Store) -> dict[str, str]:
    """pipelineId -> state of every queued event (taken off the queue, as if delivered)."""
    out = {}
    while (item := store.next_due()[0]) is not None:
        out[item.pipeline_id] = item.state
        store.ack(item)
    return out


class LossyQueue(asyncio.Queue[Hint]):
    """The hints' queue with the kernel's worst habit: hints ``lose`` says yes to are dropped on the
    way in (kept in ``lost``), so the runners never hear of them."""

    def __init__(self, lose: Callable[[Hint], bool]) -> None:
        super().__init__()
        self.lose = lose
        self.lost: list[Hint] = []

    def put_nowait(self, item: Hint) -> None:
        if self.lose(item):
            self.lost.append(item)
            return
        super().put_nowait(item)


def settings_from(raw: dict[str, Any]) -> Settings:
    """Settings with a Compass that is never reached over the network (the transport answers)."""
    compass = {
        "base_url": "https://compass.invalid/gateway/api",
        "cloud_id": "cloud",
        "email": "ci@example.com",
        "api_token": "not-used",
        "rate_limit_per_minute": 0,
    }
    return Settings.model_validate({**raw, "compass": {**compass, **raw.get("compass", {})}})


class InProcess:
    """A started service and what a test reads from it."""

    def __init__(self, service: Service, transport: ScriptedTransport) -> None:
        self.service = service
        self.transport = transport

    def metric(self, name: str) -> float:
        """A sample summed over its labels (0 before the first)."""
        return sum(
            sample.value
            for family in self.service.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name
        )

    def queue_depth(self) -> int:
        assert self.service.store is not None
        return self.service.store.outbox_depth()

    async def settled(self, within: float = 10.0) -> None:
        """Until nothing else can come of what is on disk now: two more reconcile scans of every
        Jenkins source (a scan may be under way in its thread as this is called: the second one
        started after it), then every queued event answered. What stands in for "wait a moment
        and see that nothing more arrives"."""
        sources = sum(1 for r in self.service.runners if isinstance(r, JenkinsRunner))
        assert sources, "only the Jenkins sources count their reconcile scans"
        target = self.metric("buildtail_reconcile_scans_total") + 2 * sources
        await until(
            "two reconcile scans of every source",
            lambda: self.metric("buildtail_reconcile_scans_total") >= target,
            within,
        )
        await until("an empty queue", lambda: self.queue_depth() == 0, within)

    def jobs(self) -> int:
        return sum(r.summary().jobs for r in self.service.runners)


DEFAULT_LISTEN = MetricsSettings().listen


@asynccontextmanager
async def running(settings: Settings, transport: ScriptedTransport | None = None) -> AsyncIterator[InProcess]:
    """Startup, the main loop as a task, and on the way out exit and shutdown; a main loop that
    failed fails the test."""
    scripted = transport or ScriptedTransport()
    if settings.metrics.listen == DEFAULT_LISTEN:  # the fixed default would clash with another suite
        metrics = settings.metrics.model_copy(update={"listen": "127.0.0.1:0"})
        settings = settings.model_copy(update={"metrics": metrics})
    service = Service(settings, transport=scripted)
    await service.startup()
    task = asyncio.create_task(service.main_loop())
    try:
        yield InProcess(service, scripted)
    finally:
        service.request_exit()
        try:
            await task
        finally:
            await service.shutdown()
    scripted.assert_valid()
