"""Each kind of runner in process: a real store, a real recorder, real inotify on the running loop,
and files written the way the CI writes them. The loop is the service's own."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import now_ms
from daemon.config import Settings
from daemon.history import HistoryPolicy
from daemon.loop import Loop
from daemon.ops.metrics import Metrics
from daemon.recorder import Recorder
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import RunnerContext
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import Store
from tests.inprocess import LossyQueue, drain, turn_until
from tools.fake_jenkins import JenkinsHome


def _policy(store: Store, settings: Settings) -> HistoryPolicy:
    """The daemon's first start: every configured source is new."""
    return HistoryPolicy.for_daemon(store, [c.name for c in settings.sources], now_ms())


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
    recorder = Recorder(store, settings, history=HistoryPolicy({}))
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
    loop = Loop(queue, [], Metrics(), reader)
    loop.runners.append(runner)
    await runner.start(first_start=False)
    assert runner.summary().jobs == 1
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 1  # the job's builds directory
    else:
        assert runner.watch is None

    run = job.start()
    run.log("building")
    await turn_until(loop, "the run in progress", lambda: runner.summary().in_progress == 1)
    assert drain(store) == {"team/app#1": "IN_PROGRESS"}
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 2  # and the running build

    run.finish("FAILURE")
    await turn_until(loop, "the run's end", lambda: runner.summary().in_progress == 0)
    assert drain(store) == {"team/app#1": "FAILED"}
    await loop.turn(0.01)
    if watch == "inotify":
        assert runner.watch is not None and runner.watch.count == 1  # the finished build is let go
    await runner.close()
    assert reader.count == 0


async def test_jenkins_runner_first_start_reports_only_what_runs(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store, _queue, reader = world
    home = JenkinsHome(tmp_path / "jenkins")
    job = home.job("app")
    job.start().finish("SUCCESS")
    job.start().log("still going")
    settings = _settings(tmp_path, {"type": "jenkins", "home": str(home.root)})
    ctx = RunnerContext(
        settings.host, store, Recorder(store, settings, history=_policy(store, settings)), reader
    )
    runner = JenkinsRunner(settings.jenkins_sources[0], ctx)
    await runner.start(first_start=True)
    assert drain(store) == {"app#2": "IN_PROGRESS"}
    await runner.close()


async def test_jenkins_runner_rescans_after_an_overflow(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store, _queue, reader = world
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
    assert drain(store) == {"app#1": "SUCCESSFUL"}


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
    loop = Loop(queue, [], Metrics(), reader)
    loop.runners.append(runner)
    await runner.start(first_start=True)
    assert runner.watch is not None and runner.watch.count == 1  # the directory the pattern reaches
    assert _open_descriptors(path) == 1

    with path.open("a") as fh:
        fh.write("START nightly 7\nEND nightly 7 success\n")
    await turn_until(loop, "the run", lambda: bool(store.outbox_depth()))
    assert drain(store) == {"nightly#7": "SUCCESSFUL"}
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


async def _jenkins(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> tuple[JenkinsHome, JenkinsRunner, Loop]:
    store, queue, reader = world
    home = JenkinsHome(tmp_path / "jenkins")
    home.job("app").start().finish("SUCCESS")
    settings = _settings(tmp_path, {"type": "jenkins", "home": str(home.root), "reconcile_interval": "1h"})
    runner = JenkinsRunner(settings.jenkins_sources[0], _context(settings, store, reader))
    loop = Loop(queue, [], Metrics(), reader)
    loop.runners.append(runner)
    await runner.start(first_start=False)
    drain(store)
    return home, runner, loop


async def test_a_run_first_seen_between_its_log_and_its_record_is_looked_at_again_at_once(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    """Jenkins renames the final build.xml into place milliseconds after the log says Finished: a look
    in between finds no record, and the watch it adds then may come too late for that rename. So the
    run is looked at again once the watch is in place, not only when the wait for a record is over."""
    home, runner, loop = await _jenkins(tmp_path, world)
    looks: list[tuple[Path, bool]] = []  # (run directory, whether it was watched when looked at)
    observe = runner.source.observe

    def spy(run_dir: Path, *, known_open: bool = False) -> object:
        assert runner.watch is not None
        looks.append((run_dir, run_dir in runner.watch.watched()))
        return observe(run_dir, known_open=known_open)

    runner.source.observe = spy  # type: ignore[method-assign,assignment]
    run = home.job("app").start()
    run.log("Finished: SUCCESS")  # the log is complete, build.xml not yet written
    await turn_until(loop, "a look at the new run", lambda: any(d == run.dir for d, _ in looks))
    await loop.turn(0.01)
    assert (run.dir, False) in looks and (run.dir, True) in looks, looks


async def test_a_watched_run_not_yet_readable_keeps_its_watch_through_a_scan(
    tmp_path: Path, world: tuple[Store, asyncio.Queue[Hint], InotifyReader]
) -> None:
    store = world[0]
    home, runner, loop = await _jenkins(tmp_path, world)
    job = home.job("app")
    run_dir = job.builds_dir / "2"
    run_dir.mkdir()  # Jenkins makes the directory first, the log a moment later
    await turn_until(loop, "the watch on the new run", lambda: run_dir in runner.wanted()[0])
    await loop.turn(0.05)
    runner.overflow()
    await runner.due()  # a full scan re-syncs the watches
    assert run_dir in runner.wanted()[0]
    assert runner.watch is not None and runner.watch.count == 2
    (job.dir / "nextBuildNumber").write_text("3\n")
    (run_dir / "log").write_text("Started by user admin\nBuilding in workspace /w\n")
    seen: dict[str, str] = {}
    await turn_until(
        loop,
        "the run from its own directory's hint",
        lambda: seen.update(drain(store)) or seen.get("app#2") == "IN_PROGRESS",
        within=3,
    )


async def test_a_lost_hint_costs_a_sweep_not_a_scan(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    queue = LossyQueue(lambda h: h.directory is not None and h.directory.parent.name == "b")
    reader = InotifyReader(asyncio.get_running_loop(), queue)
    reader.start()
    home = JenkinsHome(tmp_path / "jenkins")
    for name in ("a", "b"):
        home.job(name).start().finish("SUCCESS")
    settings = _settings(tmp_path, {"type": "jenkins", "home": str(home.root), "reconcile_interval": "1h"})
    runner = JenkinsRunner(settings.jenkins_sources[0], _context(settings, store, reader))
    loop = Loop(queue, [runner], Metrics(), reader)
    try:
        await runner.start(first_start=False)
        drain(store)
        home.job("b").start().finish("FAILURE")  # every hint about b is lost
        home.job("a").start().finish("SUCCESS")  # a burst next to it
        seen: dict[str, str] = {}
        await turn_until(
            loop, "both runs", lambda: {"a#2", "b#2"} <= set(seen.update(drain(store)) or seen), within=3
        )
        assert queue.lost, "the hints about b were lost"
    finally:
        await runner.close()
        reader.stop()
        store.close()
