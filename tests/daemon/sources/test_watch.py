"""InotifyWatcher on real directories with the real kernel inotify and a running event loop."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyConstants as C
from watchdog.observers.inotify_c import InotifyEvent, Mask, WatchDescriptor

from daemon.sources.watch import OVERFLOW, READER_STOPPED, Hint, InotifyReader, InotifyWatcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")


class Hints:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Hint] = asyncio.Queue()
        self.seen: list[Hint] = []

    async def until(self, cond: Callable[[Hint], bool], timeout: float = 5.0) -> Hint:  # noqa: ASYNC109
        for h in self.seen:
            if cond(h):
                return h
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching hint; saw {self.seen}")
            try:
                h = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                continue
            self.seen.append(h)
            if cond(h):
                return h


@pytest.fixture
async def hints() -> Hints:
    return Hints()


@pytest.fixture
async def watcher(hints: Hints) -> AsyncIterator[InotifyWatcher]:
    reader = InotifyReader(asyncio.get_running_loop(), hints.queue)
    reader.start()
    yield reader.watcher()
    reader.stop()


async def test_file_renamed_into_a_watched_dir(tmp_path: Path, watcher: InotifyWatcher, hints: Hints) -> None:
    d = tmp_path / "builds"
    d.mkdir()
    assert watcher.add(d) is True
    tmp = d / "build.xml-atomic123tmp"
    tmp.write_text("<build/>")
    os.replace(tmp, d / "build.xml")
    h = await hints.until(lambda h: h.name == "build.xml")
    assert h == Hint(d, "build.xml", False)
    assert any(x.directory == d and x.name == "build.xml-atomic123tmp" and x.gone for x in hints.seen)


async def test_subdirectory_creation(tmp_path: Path, watcher: InotifyWatcher, hints: Hints) -> None:
    assert watcher.add(tmp_path) is True
    (tmp_path / "7").mkdir()
    h = await hints.until(lambda h: h.name == "7")
    assert h == Hint(tmp_path, "7", False)


async def test_deleted_watched_dir_gives_a_gone_hint(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    d = tmp_path / "job" / "builds"
    d.mkdir(parents=True)
    assert watcher.add(d)
    assert watcher.count == 1
    shutil.rmtree(tmp_path / "job")
    h = await hints.until(lambda h: h.directory == d and h.name == "" and h.gone)
    assert h == Hint(d, "", True)
    # the kernel dropped the watch; the bookkeeping follows on the loop
    deadline = time.monotonic() + 5
    while watcher.count:
        assert time.monotonic() < deadline, "the dropped watch was never forgotten"
        await asyncio.sleep(0.01)


async def test_sync_adds_new_and_removes_others(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    assert watcher.sync(dict.fromkeys([a, b])) == {a, b}
    assert watcher.count == 2
    assert watcher.sync(dict.fromkeys([b, c, tmp_path / "missing"])) == {c}
    assert watcher.count == 2
    assert watcher.sync(dict.fromkeys([b, c])) == set()
    # a is no longer watched: changes there give no hint, changes in c do
    (a / "x").write_text("x")
    (c / "y").write_text("y")
    await hints.until(lambda h: h.directory == c and h.name == "y")
    await asyncio.sleep(0)  # let any queued callback for a run
    assert not any(h.directory == a for h in hints.seen)


async def test_add_twice_and_nonexistent(tmp_path: Path, watcher: InotifyWatcher) -> None:
    assert watcher.add(tmp_path) is True
    assert watcher.add(tmp_path) is False
    assert watcher.add(tmp_path / "does" / "not" / "exist") is False
    assert watcher.count == 1


async def test_file_watch_is_refused(tmp_path: Path, watcher: InotifyWatcher) -> None:
    f = tmp_path / "plain"
    f.write_text("")
    assert watcher.add(f) is False  # IN_ONLYDIR
    assert watcher.count == 0


def _append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


async def test_accept_rule_drops_events_in_the_reader_thread(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    run = tmp_path / "7"
    run.mkdir()
    seen_by_rule: list[tuple[str, bool]] = []

    def only_build_xml(name: str, closed: bool) -> bool:
        seen_by_rule.append((name, closed))
        return name == "build.xml"

    assert watcher.add(run, accept=only_build_xml)
    tmp = run / "build.xml-atomic5tmp"
    tmp.write_text("<build/>")  # created, then closed after writing
    os.replace(tmp, run / "build.xml")
    _append(run / "build.xml", "\n")  # closed after writing only
    await hints.until(lambda h: h.name == "build.xml" and h.closed)
    assert ("build.xml-atomic5tmp", False) in seen_by_rule
    assert ("build.xml-atomic5tmp", True) in seen_by_rule
    assert ("build.xml", False) in seen_by_rule
    assert [h for h in hints.seen if h.name != "build.xml"] == []
    assert Hint(run, "build.xml", False, False) in hints.seen  # the rename: not a mere close
    # the directory's own removal passes whatever the rule says
    shutil.rmtree(run)
    await hints.until(lambda h: h.directory == run and h.name == "" and h.gone)


async def test_hints_arriving_together_wake_the_loop_once(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    assert watcher.add(tmp_path)
    handed_over = 0
    original = watcher.reader._hand_over

    def counting() -> None:
        nonlocal handed_over
        handed_over += 1
        original()

    watcher.reader._hand_over = counting  # type: ignore[method-assign]
    names = [str(n) for n in range(1, 201)]
    for name in names:  # written while the loop is not running: they pile up in the reader thread
        (tmp_path / name).mkdir()
    created = set(names)
    while created:
        h = await asyncio.wait_for(hints.queue.get(), 5)
        created.discard(h.name)
    assert handed_over < 50, f"{handed_over} wake-ups for 200 directories"


async def test_retired_watch_stays_until_flushed_and_revives_on_add(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert watcher.add(a) and watcher.add(b)
    watcher.retire(a)
    watcher.retire(b)
    assert watcher.count == 2  # still watched: nothing is missed before the flush
    (a / "x").write_text("x")
    await hints.until(lambda h: h.directory == a and h.name == "x")
    assert watcher.add(b) is False  # wanted again before the flush: kept, and nothing was missed
    watcher.flush_retired()
    assert watcher.count == 1
    (a / "y").write_text("y")
    (b / "z").write_text("z")
    # one descriptor, events in order: had y been seen, its hint would have come before z's
    await hints.until(lambda h: h.directory == b and h.name == "z")
    assert not any(h.directory == a and h.name == "y" for h in hints.seen)


async def test_watch_sets_share_one_descriptor_and_hints_name_their_owner(
    tmp_path: Path, hints: Hints
) -> None:
    reader = InotifyReader(asyncio.get_running_loop(), hints.queue)
    reader.start()
    try:
        jenkins, logs = reader.watcher("jenkins"), reader.watcher("logs")
        a, b = tmp_path / "a", tmp_path / "b"
        a.mkdir()
        b.mkdir()
        assert jenkins.add(a) and logs.add(b)
        assert reader.count == 2
        (a / "x").mkdir()
        (b / "y").mkdir()
        await hints.until(lambda h: h.name == "y")
        owners = {h.name: h.owner for h in hints.seen if h.name in ("x", "y")}
        assert owners == {"x": "jenkins", "y": "logs"}
        jenkins.close()  # one source let go: the other's watches stay
        assert (jenkins.count, logs.count, reader.count) == (0, 1, 1)
    finally:
        reader.stop()


def _overflow_through_watchdog(reader: InotifyReader) -> None:
    """What watchdog's dispatcher does with the kernel's IN_Q_OVERFLOW event (wd -1), through its own
    ``InotifyFD.handle_event``: every callback hears ``on_queue_overflow`` (and, from 7.1.1 on,
    ``on_events_lost``)."""
    fd = reader._fd  # the real InotifyFD the reader runs
    assert fd is not None
    fd.handle_event(InotifyEvent(WatchDescriptor(-1), Mask(C.IN_Q_OVERFLOW), 0, b""))


async def test_an_overflow_is_one_hint_and_every_watch_keeps_working(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    dirs = [tmp_path / str(i) for i in range(5)]
    for d in dirs:
        d.mkdir()
        assert watcher.add(d)
    await asyncio.to_thread(_overflow_through_watchdog, watcher.reader)
    await hints.until(lambda h: h == OVERFLOW)
    (dirs[3] / "build.xml").write_text("<build/>")
    await hints.until(lambda h: h.directory == dirs[3] and h.name == "build.xml")
    assert hints.seen.count(OVERFLOW) == 1  # one overflow, one hint: not one per watched directory
    assert watcher.reader.alive
    # a later overflow is a new one, and is reported again
    await asyncio.to_thread(_overflow_through_watchdog, watcher.reader)
    await hints.until(lambda h: hints.seen.count(OVERFLOW) == 2)
    (dirs[0] / "log").write_text("x")
    await hints.until(lambda h: h.directory == dirs[0] and h.name == "log")


class _ReaderKiller(BaseException):
    """Not an ``Exception``: gets past the callback's guard, as a bug in watchdog itself would."""


async def test_a_reader_thread_that_dies_is_reported_and_a_new_one_sees_again(
    tmp_path: Path, watcher: InotifyWatcher, hints: Hints
) -> None:
    d = tmp_path / "builds"
    d.mkdir()

    def explodes_on_poison(name: str, closed: bool) -> bool:
        if name == "poison":
            raise _ReaderKiller(name)
        return True

    assert watcher.add(d, accept=explodes_on_poison)
    (d / "poison").touch()
    await hints.until(lambda h: h == READER_STOPPED)
    reader = watcher.reader
    assert reader.stopped and isinstance(reader.stopped_error, _ReaderKiller)
    # the directory did not go away: the dying descriptor's watches are not reported as deleted
    assert [h for h in hints.seen if h.directory == d and h.gone] == []
    reader.restart()
    assert not reader.stopped and watcher.count == 0  # the old watches went with the old descriptor
    assert watcher.sync({d: None}) == {d}
    (d / "7").mkdir()
    await hints.until(lambda h: h.directory == d and h.name == "7")
    assert hints.seen.count(READER_STOPPED) == 1


async def test_stopping_the_reader_is_not_reported_as_a_death(tmp_path: Path, hints: Hints) -> None:
    reader = InotifyReader(asyncio.get_running_loop(), hints.queue)
    reader.start()
    assert reader.watcher().add(tmp_path)
    await asyncio.to_thread(reader.stop)
    await asyncio.sleep(0)  # let anything posted from the thread reach the queue
    while not hints.queue.empty():
        hints.seen.append(hints.queue.get_nowait())
    assert READER_STOPPED not in hints.seen
    assert [h for h in hints.seen if h.gone] == []
