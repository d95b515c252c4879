"""Each kind of runner in process: a real store, a real recorder, real inotify on the running loop,
and files written the way the CI writes them. The loop here is the service's, in a few lines."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.recorder import Recorder
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import Runner, RunnerContext
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import Store
from tools.fake_jenkins import JenkinsHome


class Loop:
    """What the service does between hints, for the runners under test."""

    def __init__(self, store: Store, queue: asyncio.Queue[Hint], reader: InotifyReader) -> None:
        self.store = store
        self.queue = queue
        self.reader = reader
        self.runners: list[Runner] = []

    async def turn(self, at_most: float = 0.5) -> None:
        deadline = min([r.deadline() for r in self.runners], default=time.monotonic() + at_most)
        wait = max(0.0, min(deadline - time.monotonic(), at_most))
        hints: list[Hint] = []
        try:
            hints.append(await asyncio.wait_for(self.queue.get(), wait))
        except TimeoutError:
            pass
        while not self.queue.empty():
            hints.append(self.queue.get_nowait())
        by_name = {r.name: r for r in self.runners}
        for hint in hints:
            if hint.directory is None:
                for r in self.runners:
                    r.overflow()
            elif hint.owner in by_name:
                by_name[hint.owner].claim(hint)
        for r in self.runners:
            await r.due()
        if self.queue.empty():
            self.reader.flush_retired()

    async def until(self, what: str, predicate: Callable[[], bool], within: float = 10.0) -> None:
        end = time.monotonic() + within
        while not predicate():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            await self.turn(0.05)

    def queued(self) -> dict[str, str]:
        """pipelineId -> state of every queued event (taken off the queue, as if delivered)."""
        out = {}
        while (item := self.store.next_due()[0]) is not None:
            out[item.pipeline_id] = item.state
            self.store.ack(item)
        return out


def _settings(tmp_path: Path, *sources: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {"host": "ci.example.com", "state_dir": str(tmp_path / "state"), "sources": list(sources)}
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Store, asyncio.Queue[Hint], InotifyReader]]:
    store = Store(tmp_path / "state")
    queue: asyncio.Queue[Hint] = asyncio.Queue()
    reader = InotifyReader(asyncio.get_running_loop(), queue)
    reader.start()
    yield store, queue, reader
    reader.stop()
    store.close()


def _context(settings: Settings, store: Store, reader: InotifyReader | None) -> RunnerContext:
    recorder = Recorder(store, settings, history_cutoff_ms=0)
    return RunnerContext(settings.host, store, recorder, reader)


def _open_descriptors(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


# --- the Jenkins runner ---------------------------------------------------------------------------


@pytest.mark.parametrize("watch", ["inotify", "polling"])
async def test_jenkins_runner_reports_a_build_from_start_to_end(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader], watch: str
) -> None:
    store, queue, reader = world
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("team/app")
    settings = _settings(
        tmp_path, {"type": "jenkins", "home": str(home.root), "watch": watch, "poll_interval": "100ms"}
    )
    runner = JenkinsRunner(settings.jenkins_sources[0], _context(settings, store, reader))
    loop = Loop(store, queue, reader)
    loop.runners.append(runner)
    await runner.start(first_start=False)
    assert runner.summary().jobs == 1
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 1  # the job's builds directory
    else:
        assert runner.watch is None

    run = job.start()
    run.log("building")
    await loop.until("the run in progress", lambda: runner.summary().in_progress == 1)
    assert loop.queued() == {"team/app#1": "IN_PROGRESS"}
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 2  # and the running build

    run.finish("FAILURE")
    await loop.until("the run's end", lambda: runner.summary().in_progress == 0)
    assert loop.queued() == {"team/app#1": "FAILED"}
    await loop.turn(0.01)
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 1  # the finished build is let go
    await runner.close()
    assert reader.count == 0


async def test_jenkins_runner_first_start_reports_only_what_runs(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store, queue, reader = world
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    job.start().finish("SUCCESS")
    job.start().log("still going")
    settings = _settings(tmp_path, {"type": "jenkins", "home": str(home.root)})
    ctx = RunnerContext(
        settings.host, store, Recorder(store, settings, history_cutoff_ms=int(time.time() * 1000)), reader
    )
    runner = JenkinsRunner(settings.jenkins_sources[0], ctx)
    await runner.start(first_start=True)
    assert Loop(store, queue, reader).queued() == {"app#2": "IN_PROGRESS"}
    await runner.close()


async def test_jenkins_runner_rescans_after_an_overflow(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store, queue, reader = world
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    polled_hourly = {"watch": "polling", "poll_interval": "1h", "reconcile_interval": "1h"}
    settings = _settings(tmp_path, {"type": "jenkins", "home": str(home.root), **polled_hourly})
    runner = JenkinsRunner(settings.jenkins_sources[0], _context(settings, store, reader))
    await runner.start(first_start=False)
    job.start().finish("SUCCESS")
    assert runner.deadline() > time.monotonic() + 60  # the next poll and scan are an hour away
    runner.overflow()
    assert runner.deadline() <= time.monotonic()
    await runner.due()
    assert Loop(store, queue, reader).queued() == {"app#1": "SUCCESSFUL"}


# --- the file runner ------------------------------------------------------------------------------

RULES = {
    "start": r"^START (?P<name>\S+) (?P<id>\d+)$",
    "finish": r"^END (?P<name>\S+) (?P<id>\d+) (?P<result>\w+)$",
}


async def test_file_runner_tails_a_log_and_releases_it_on_close(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store, queue, reader = world
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "ci.log"
    path.write_text("START old 1\n")  # there at the first start: history
    settings = _settings(
        tmp_path, {"type": "log", "name": "ci", "paths": [str(logs / "*.log")], "rules": RULES}
    )
    runner = FileSourceRunner(settings.file_sources[0], _context(settings, store, reader))
    loop = Loop(store, queue, reader)
    loop.runners.append(runner)
    await runner.start(first_start=True)
    assert runner.watch is not None and runner.watch.count == 1  # the directory the pattern reaches
    assert _open_descriptors(path) == 1

    with path.open("a") as fh:
        fh.write("START nightly 7\nEND nightly 7 success\n")
    await loop.until("the run", lambda: bool(store.outbox_depth()))
    assert loop.queued() == {"nightly#7": "SUCCESSFUL"}
    assert runner.deadline() > time.monotonic()  # the safety poll waits; hints bring it forward

    await runner.close()
    assert _open_descriptors(path) == 0
    assert reader.count == 0


async def test_file_runner_polls_without_inotify(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    logs = tmp_path / "logs"
    logs.mkdir()
    settings = _settings(
        tmp_path,
        {
            "type": "log",
            "name": "ci",
            "paths": [str(logs / "*.log")],
            "rules": RULES,
            "watch": "polling",
            "poll_interval": "50ms",
        },
    )
    runner = FileSourceRunner(settings.file_sources[0], _context(settings, store, None))
    await runner.start(first_start=True)
    assert runner.watch is None
    (logs / "ci.log").write_text("END app 3 failed\n")  # a file born after the first start: all new
    end = time.monotonic() + 5
    while not store.outbox_depth():
        assert time.monotonic() < end
        await asyncio.sleep(max(0.0, runner.deadline() - time.monotonic()))
        await runner.due()
    item, _ = store.next_due()
    assert item is not None and (item.pipeline_id, item.state) == ("app#3", "FAILED")
    await runner.close()
    store.close()
