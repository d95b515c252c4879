"""Where history is kept out, for every kind of source: the daemon's first start, a source added on
reload, and ``backfill``'s explicit window. In process: a real store, the real runners and recorder,
real inotify, files written the way each CI writes them. ``_Daemon`` starts and reloads runners as
the service does: one ``HistoryPolicy``, and each runner told whether its source is new."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.backfill import find_history
from daemon.clock import now_ms
from daemon.config import JenkinsSourceSettings, Settings, SourceSettings
from daemon.history import GLOBAL_CUTOFF_KEY, HistoryPolicy, cutoff_key
from daemon.loop import Loop
from daemon.ops.metrics import Metrics
from daemon.recorder import Recorder
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.files.sources import STARTED_MARK, LogSource, ResultFileSource
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import Runner, RunnerContext
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import PRIORITY_BACKFILL, Store
from tests.inprocess import drain, turn_until
from tools.fake_jenkins import JenkinsHome

HOUR_MS = 3_600_000
RULES = {
    "start": r"^START (?P<name>\S+) (?P<id>\d+)$",
    "finish": r"^END (?P<name>\S+) (?P<id>\d+) (?P<result>\w+)$",
}


def _written(*paths: Path) -> None:
    """Waits until the clock has passed the files' modification times: what was written before a
    start is then older than its cutoff even on a file system with a coarse clock."""
    latest = max(p.stat().st_mtime_ns // 1_000_000 for p in paths)
    while now_ms() <= latest:
        time.sleep(0.001)


class _Daemon:
    """The service's startup and reload, as far as history goes."""

    def __init__(self, store: Store, queue: asyncio.Queue[Hint], reader: InotifyReader) -> None:
        self.store = store
        self.loop = Loop(queue, [], Metrics(), reader)
        self.reader = reader
        self.recorder: Recorder | None = None

    async def start(self, settings: Settings, *, at_ms: int | None = None) -> None:
        names = [c.name for c in settings.sources]
        policy = HistoryPolicy.for_daemon(self.store, names, now_ms() if at_ms is None else at_ms)
        self.recorder = Recorder(self.store, settings, history=policy)
        for cfg in settings.sources:
            await self._run(settings, cfg)

    async def add(self, settings: Settings, cfg: SourceSettings) -> None:
        assert self.recorder is not None
        self.recorder.settings = settings
        self.recorder.history.add_sources(self.store, [cfg.name], now_ms())
        await self._run(settings, cfg)

    async def _run(self, settings: Settings, cfg: SourceSettings) -> None:
        assert self.recorder is not None
        ctx = RunnerContext(settings.host, self.store, self.recorder, self.reader)
        runner: Runner
        if isinstance(cfg, JenkinsSourceSettings):
            runner = JenkinsRunner(cfg, ctx)
        else:
            runner = FileSourceRunner(cfg, ctx)
        self.loop.runners.append(runner)
        await runner.start(first_start=self.recorder.history.first_look(cfg.name))

    async def close(self) -> None:
        for runner in self.loop.runners:
            await runner.close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[_Daemon]:
    store = Store(tmp_path / "state")
    queue: asyncio.Queue[Hint] = asyncio.Queue()
    reader = InotifyReader(asyncio.get_running_loop(), queue)
    reader.start()
    d = _Daemon(store, queue, reader)
    yield d
    await d.close()
    reader.stop()
    store.close()


def _settings(tmp_path: Path, *sources: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {"host": "ci.example.com", "state_dir": str(tmp_path / "state"), "sources": list(sources)}
    )


# --- what each kind of source finds: history, a run in progress, then news --------------------------


class _Kind:
    """One kind of source: its settings, its history (one finished run, one in progress), and news."""

    name: str

    def source(self, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def history(self) -> None:
        """Written now: one finished run, and one still running."""
        raise NotImplementedError

    in_progress: ClassVar[dict[str, str]]  # what the start reports of the history: the run in progress

    def news(self) -> dict[str, str]:
        """A run that finishes after the start (with an old start time): always reported."""
        raise NotImplementedError


class _Jenkins(_Kind):
    name = "jenkins"

    def source(self, tmp_path: Path) -> dict[str, Any]:
        self.home = JenkinsHome(tmp_path / "jenkins")
        self.job = self.home.job("app")
        return {"type": "jenkins", "name": "jenkins", "home": str(self.home.root), "reconcile_interval": "1h"}

    def history(self) -> None:
        done = self.job.start(start_ms=now_ms() - HOUR_MS)
        done.finish("SUCCESS")
        running = self.job.start()
        running.log("still going")
        _written(done.dir, done.build_xml, done.log_path, running.dir, running.log_path)

    in_progress: ClassVar[dict[str, str]] = {"app#2": "IN_PROGRESS"}

    def news(self) -> dict[str, str]:
        self.job.start(start_ms=now_ms() - HOUR_MS).finish("FAILURE")
        return {"app#3": "FAILED"}


class _Log(_Kind):
    name = "log"

    def source(self, tmp_path: Path) -> dict[str, Any]:
        logs = tmp_path / "logs"
        logs.mkdir()
        self.path = logs / "ci.log"
        self.path.write_text("")
        return {"type": "log", "name": "log", "paths": [str(logs / "*.log")], "rules": RULES}

    def history(self) -> None:
        with self.path.open("a") as fh:
            fh.write("START old 1\nEND old 1 success\nSTART long 2\n")
        _written(self.path)

    in_progress: ClassVar[
        dict[str, str]
    ] = {}  # a log's existing lines are not read at all (start at the end)

    def news(self) -> dict[str, str]:
        with self.path.open("a") as fh:
            fh.write("END long 2 failed\nSTART new 3\n")
        return {"long#2": "FAILED", "new#3": "IN_PROGRESS"}


def _result(path: Path, run_id: int, **fields: Any) -> None:
    hour_ago = time.time() - 3600
    body = {"pipeline": "deploy", "id": run_id, "started_at": hour_ago, **fields}
    path.with_suffix(".tmp").write_text(json.dumps(body))
    path.with_suffix(".tmp").rename(path)  # moved into place, as CI scripts do


class _ResultFile(_Kind):
    name = "result_file"

    def source(self, tmp_path: Path) -> dict[str, Any]:
        self.dir = tmp_path / "results"
        self.dir.mkdir()
        return {"type": "result_file", "name": "result_file", "paths": [str(self.dir / "*.json")]}

    def history(self) -> None:
        _result(self.dir / "1.json", 1, result="success", completed_at=time.time() - 3000)
        _result(self.dir / "2.json", 2, state="IN_PROGRESS")
        _written(self.dir / "1.json", self.dir / "2.json")

    in_progress: ClassVar[dict[str, str]] = {"deploy#2": "IN_PROGRESS"}

    def news(self) -> dict[str, str]:
        _result(self.dir / "3.json", 3, result="failure", completed_at=time.time() - 3000)
        return {"deploy#3": "FAILED"}


KINDS = [_Jenkins, _Log, _ResultFile]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_the_first_start_sends_no_history(tmp_path: Path, daemon: _Daemon, kind: type[_Kind]) -> None:
    k = kind()
    settings = _settings(tmp_path, k.source(tmp_path))
    k.history()
    await daemon.start(settings)
    await daemon.loop.turn(0.05)
    assert drain(daemon.store) == k.in_progress
    expected = k.news()
    await turn_until(daemon.loop, "the news", lambda: daemon.store.outbox_depth() >= len(expected))
    assert drain(daemon.store) == expected


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
async def test_a_source_added_on_reload_sends_no_history(
    tmp_path: Path, daemon: _Daemon, kind: type[_Kind]
) -> None:
    """The daemon first started an hour ago; the source's history was written since, before the
    reload that adds it: still history, as if the source had been there at the first start."""
    k = kind()
    empty = tmp_path / "empty"
    empty.mkdir()
    other = {"type": "log", "name": "other", "paths": [str(empty / "*.log")], "rules": RULES}
    await daemon.start(_settings(tmp_path, other), at_ms=now_ms() - HOUR_MS)
    added = k.source(tmp_path)
    k.history()
    settings = _settings(tmp_path, other, added)
    await daemon.add(settings, settings.sources[1])
    await daemon.loop.turn(0.05)
    assert drain(daemon.store) == k.in_progress
    assert daemon.store.get_meta_int(cutoff_key(k.name)) is not None  # kept across restarts
    expected = k.news()
    await turn_until(daemon.loop, "the news", lambda: daemon.store.outbox_depth() >= len(expected))
    assert drain(daemon.store) == expected


async def test_backfill_sends_the_jenkins_history_of_its_window(tmp_path: Path, daemon: _Daemon) -> None:
    k = _Jenkins()
    settings = _settings(tmp_path, k.source(tmp_path))
    k.job.start(start_ms=now_ms() - 3 * HOUR_MS).finish("SUCCESS")  # #1, before the window
    k.history()  # #2 finished an hour ago, #3 runs
    await daemon.start(settings)
    assert drain(daemon.store) == {"app#3": "IN_PROGRESS"}
    since = now_ms() - 2 * HOUR_MS
    recorder = Recorder(daemon.store, settings, history=HistoryPolicy.backfill(since))
    for facts in find_history(settings, daemon.store, since):
        recorder.record(facts, priority=PRIORITY_BACKFILL)
    assert drain(daemon.store) == {"app#2": "SUCCESSFUL"}


def _read_all(settings: Settings) -> list[Any]:
    """What a file source reads when told its files are not history (no first poll to skip)."""
    cfg = settings.file_sources[0]
    source = (
        LogSource(cfg, host=settings.host, checkpoints={STARTED_MARK: {"at_ms": 0}})
        if cfg.type == "log"
        else ResultFileSource(cfg, host=settings.host, checkpoints={"#first_poll": {"done": True}})
    )
    return [f for batch in source.poll() if hasattr(batch, "facts") for f in batch.facts]


@pytest.mark.parametrize("kind", [_Log, _ResultFile], ids=lambda k: k.name)
async def test_backfill_leaves_file_sources_alone_and_its_window_decides(
    tmp_path: Path, daemon: _Daemon, kind: type[_Kind]
) -> None:
    """``find_history`` reads Jenkins homes only (as the README says); the window of a backfill's
    policy admits a file source's runs started since, and not the older ones."""
    k = kind()
    settings = _settings(tmp_path, k.source(tmp_path))
    k.history()
    await daemon.start(settings)
    drain(daemon.store)
    assert find_history(settings, daemon.store, 0) == []
    facts = [f for f in _read_all(settings) if not f.running]
    assert facts
    store = daemon.store
    late = HistoryPolicy.backfill(max(f.start_ms for f in facts) + 1)
    early = HistoryPolicy.backfill(min(f.start_ms for f in facts))
    assert not any(late.admits(f, None, arrived=False) for f in facts)
    recorder = Recorder(store, settings, history=early)
    assert all(recorder.record(f, priority=PRIORITY_BACKFILL) is not None for f in facts)


async def test_a_database_from_before_per_source_cutoffs_keeps_its_first_start(tmp_path: Path) -> None:
    """0.2.0 kept one cutoff: the sources that left state behind keep it; a new one gets its own."""
    store = Store(tmp_path / "state")
    first = now_ms() - HOUR_MS
    store.set_meta_int(GLOBAL_CUTOFF_KEY, first)
    store.set_meta_int("watermark:old", first + 1000)
    policy = HistoryPolicy.for_daemon(store, ["old", "new"], now_ms())
    assert policy.cutoff_ms("old") == first and not policy.first_look("old")
    assert (policy.cutoff_ms("new") or 0) > first and policy.first_look("new")
    assert store.get_meta_int(GLOBAL_CUTOFF_KEY) == first
    again = HistoryPolicy.for_daemon(store, ["old", "new"], now_ms() + 5000)  # a restart
    assert again.cutoff_ms("new") == policy.cutoff_ms("new") and not again.first_look("new")
    store.close()


def test_the_stored_policy_reads_the_cutoffs_as_the_daemon_would_without_writing(tmp_path: Path) -> None:
    """``HistoryPolicy.stored`` (``buildtail explain``): a source from before per-source cutoffs that
    left state has the daemon's first start; one that left nothing has no cutoff yet (the daemon
    would give it its own when it starts with it, not the first start's); nothing is written."""
    store = Store(tmp_path / "state")
    first = now_ms() - HOUR_MS
    store.set_meta_int(GLOBAL_CUTOFF_KEY, first)
    store.set_meta_int("watermark:old", first + 1000)
    store.close()
    readonly = Store(tmp_path / "state", readonly=True)
    stored = HistoryPolicy.stored(readonly, ["old", "new"])
    readonly.close()
    assert stored.cutoff_ms("old") == first and stored.cutoff_ms("new") is None
    store = Store(tmp_path / "state")
    assert store.get_meta_int(cutoff_key("old")) is None and store.get_meta_int(cutoff_key("new")) is None
    daemon = HistoryPolicy.for_daemon(store, ["old", "new"], now_ms())
    assert daemon.cutoff_ms("old") == stored.cutoff_ms("old")
    store.close()
