"""File-system hints for the event loop: "something changed in this directory".

The producer is watchdog's inotify reader thread (one inotify descriptor for all watches, shared by
every source: ``InotifyReader``); the consumer is the event loop. Each source keeps its own set of
watches on that descriptor (an ``InotifyWatcher``), and its hints carry its name, so they go back to
the source that asked for them. The reader thread drops the events a directory's ``accept`` rule says
cannot matter (a Jenkins build finishing writes about ten entries, of which one or two count), and
hints that arrive together wake the loop once, not once each. Hints are only hints: the source
re-reads the files, and a periodic reconcile scan repairs whatever inotify missed or dropped.

Two hints are not about a directory. ``OVERFLOW``: the kernel's queue overflowed and events were lost,
reported once per overflow however many directories are watched. ``READER_STOPPED``: the reader
thread ended without being asked to (an exception in watchdog or in a callback); the service starts a
new one and rescans, so seeing builds never waits for a restart of the process.

This module uses watchdog's inotify layer below its public surface (``inotify_c``), so the versions
it runs with are bounded in ``pyproject.toml`` to those the tests have seen. The callback subclasses
watchdog's own ``WatchCallback`` protocol: a method a later release adds to the protocol is then
inherited (as a no-op) instead of raising in the dispatcher thread.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)
from watchdog.observers.inotify_c import InotifyConstants as C

from daemon.ops.logs import LogOnce

__all__ = ["OVERFLOW", "READER_STOPPED", "Accept", "Hint", "InotifyReader", "InotifyWatcher"]

log = logging.getLogger("buildtail.watch")

MASK = Mask(
    C.IN_CREATE
    | C.IN_MOVED_TO
    | C.IN_MOVED_FROM
    | C.IN_DELETE
    | C.IN_CLOSE_WRITE
    | C.IN_DELETE_SELF
    | C.IN_MOVE_SELF
    | C.IN_ONLYDIR
    | C.IN_EXCL_UNLINK
)


MODIFY_MASK = Mask(MASK | C.IN_MODIFY)  # for tailed log files: appends matter there

Accept = Callable[[str, bool], bool]
"""Called in the reader thread with an entry's name and whether the event is only a close after
writing; False drops the event. Events about the watched directory itself always pass."""


@dataclass(frozen=True, slots=True)
class Hint:
    directory: Path | None  # None: the kernel queue overflowed, anything may have changed
    name: str
    gone: bool = False  # the entry (or, with an empty name, the directory itself) went away
    closed: bool = False  # the entry was only closed after writing (not created, moved or deleted)
    owner: str = ""  # the watch set (a source's name) that asked for this directory


OVERFLOW = Hint(None, "")
"""The kernel's inotify queue overflowed: anything may have changed."""
READER_STOPPED = Hint(None, "reader stopped")
"""The reader thread ended unasked: every watch went with it."""


class _DirCallback(WatchCallback):
    """Receives the reader thread's events for one directory and forwards them to the loop.

    Subclassing watchdog's protocol (rather than matching it by hand) means a callback method a newer
    release adds is inherited as a no-op, never an ``AttributeError`` that ends the dispatcher thread.
    """

    def __init__(self, watcher: InotifyWatcher, directory: Path, accept: Accept | None) -> None:
        self.watcher = watcher
        self.directory = directory
        self.accept = accept

    def on_event(self, event: InotifyEvent) -> None:
        self.watcher.reader.overflow_over()
        mask = event.mask
        owner = self.watcher.owner
        gone = bool(mask & (C.IN_DELETE | C.IN_MOVED_FROM | C.IN_DELETE_SELF | C.IN_MOVE_SELF))
        if mask & (C.IN_DELETE_SELF | C.IN_MOVE_SELF):
            self.watcher.reader.post(Hint(self.directory, "", gone, owner=owner))
            return
        name = event.name.decode("utf-8", "surrogateescape")
        closed = not gone and not mask & (C.IN_CREATE | C.IN_MOVED_TO)
        try:
            wanted = self.accept is None or self.accept(name, closed)
        except Exception:  # a faulty rule must not kill the reader thread: pass the hint on
            wanted = True
        if not wanted:
            return
        self.watcher.reader.post(Hint(self.directory, name, gone, closed, owner))

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        if self.watcher.reader.closing:
            return  # the descriptor is closing: its watches end, the directories did not go away
        self.watcher.forget(self.directory)
        self.watcher.reader.post(Hint(self.directory, "", True, owner=self.watcher.owner))

    def on_queue_overflow(self) -> None:
        self.watcher.reader.overflowed()

    def on_events_lost(self) -> None:
        """watchdog >= 7.1.1: called on every callback once all have seen ``on_queue_overflow``."""
        self.watcher.reader.overflow_over()


class _ReaderThread(InotifyFD):
    """watchdog's reader thread, which says when it ends: a thread that dies must not take the
    daemon's sight with it unnoticed (watchdog only stores the error, or lets it escape ``run``)."""

    def __init__(self, on_exit: Callable[[_ReaderThread, BaseException | None], None]) -> None:
        super().__init__()
        self._on_exit = on_exit
        self.ended = False

    def run(self) -> None:
        error: BaseException | None = None
        try:
            super().run()
        except BaseException as exc:  # reported to the loop, not to threading's excepthook
            error = exc
        finally:
            self.ended = True
            self._on_exit(self, error)


class InotifyReader:
    """The one inotify descriptor and its reader thread; hints reach the loop through ``queue``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Hint]) -> None:
        self.loop = loop
        self._queue = queue
        self._fd: _ReaderThread | None = None
        self._ids = itertools.count(1)
        self._limit = LogOnce(log)
        self._pending: list[Hint] = []
        self._pending_lock = threading.Lock()
        self._scheduled = False
        self._watchers: list[InotifyWatcher] = []
        self._stopping = False
        self._overflow_reported = False  # touched by the dispatcher thread only
        self.stopped_error: BaseException | None = None  # why the last reader thread ended unasked

    def watcher(self, owner: str = "") -> InotifyWatcher:
        """A watch set of its own on this descriptor, for one source."""
        w = InotifyWatcher(self, owner)
        self._watchers.append(w)
        return w

    def post(self, hint: Hint) -> None:
        """Called from the reader thread; one wake-up of the loop carries every hint posted before it runs."""
        with self._pending_lock:
            self._pending.append(hint)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._hand_over)
        except RuntimeError:  # the loop is closed: shutting down
            with self._pending_lock:
                self._scheduled = False

    def _hand_over(self) -> None:
        with self._pending_lock:
            hints, self._pending = self._pending, []
            self._scheduled = False
        for hint in hints:
            self._queue.put_nowait(hint)

    def overflowed(self) -> None:
        """Reader thread: one ``OVERFLOW`` hint per overflow, not one per watched directory."""
        if not self._overflow_reported:
            self._overflow_reported = True
            self.post(OVERFLOW)

    def overflow_over(self) -> None:
        """Reader thread: every callback has heard of the overflow (``on_events_lost``), or events
        flow again; the next overflow is a new one."""
        self._overflow_reported = False

    @property
    def closing(self) -> bool:
        fd = self._fd
        return self._stopping or fd is None or fd.stopped_event.is_set()

    def _thread_ended(self, thread: _ReaderThread, error: BaseException | None) -> None:
        """Reader thread, as it ends: unless ``stop`` asked for it, the loop hears ``READER_STOPPED``."""
        if self._stopping or thread is not self._fd:
            return
        self.stopped_error = error
        self.post(READER_STOPPED)

    def start(self) -> None:
        """Starts a reader thread on a new inotify descriptor; raises ``OSError`` when the kernel
        refuses one (``fs.inotify.max_user_instances``)."""
        self._stopping = False
        self._overflow_reported = False
        fd = _ReaderThread(self._thread_ended)
        fd.daemon = True
        self._fd = fd
        fd.start()

    def restart(self) -> None:
        """After ``READER_STOPPED``: the old descriptor closed, every watch set emptied (their owners
        add them again on their next sync), and a new reader thread started."""
        self.stop()
        self.start()

    def stop(self) -> None:
        self._stopping = True
        if self._fd is not None:
            self._fd.stop()
            self._fd.join(timeout=5)
            self._fd = None
        for w in self._watchers:
            w.dropped()
        with self._pending_lock:
            self._pending.clear()
            self._scheduled = False

    @property
    def alive(self) -> bool:
        return self._fd is not None and self._fd.is_alive()

    @property
    def stopped(self) -> bool:
        """The reader thread ended (or none could be started): no watch reports anything."""
        fd = self._fd
        return fd is None or fd.ended or not fd.is_alive()

    @property
    def count(self) -> int:
        return sum(w.count for w in self._watchers)

    def flush_retired(self) -> None:
        for w in self._watchers:
            w.flush_retired()

    def add_watch(
        self, path: Path, mask: Mask, callback: _DirCallback
    ) -> tuple[WatchDescriptor, CallbackId] | None:
        if self._fd is None:  # no reader (it could not be restarted): the scans cover everything
            return None
        try:
            cid = CallbackId(next(self._ids))
            return self._fd.add_callback(bytes(path), mask, callback, cid), cid
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._limit(
                    "watch limit",
                    logging.WARNING,
                    "inotify watch limit reached at %d watches (fs.inotify.max_user_watches); "
                    "the periodic reconcile scan covers the rest",
                    self.count,
                )
            return None

    def remove_watch(self, entry: tuple[WatchDescriptor, CallbackId]) -> None:
        if self._fd is None:
            return
        with warnings.catch_warnings():  # a watch the kernel already dropped only warns
            warnings.simplefilter("ignore")
            try:
                self._fd.remove_callbacks([entry])
            except (OSError, KeyError):
                pass

    def release(self, watcher: InotifyWatcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)


class InotifyWatcher:
    """Keeps exactly the requested set of directories under watch for one source."""

    def __init__(self, reader: InotifyReader, owner: str) -> None:
        self.reader = reader
        self.owner = owner
        self._watches: dict[Path, tuple[WatchDescriptor, CallbackId]] = {}
        self._retired: set[Path] = set()

    def forget(self, path: Path) -> None:
        """The kernel dropped this watch (directory deleted): only the bookkeeping remains to clear."""
        try:
            self.reader.loop.call_soon_threadsafe(self._watches.pop, path, None)
        except RuntimeError:
            pass

    @property
    def count(self) -> int:
        return len(self._watches)

    def watched(self) -> set[Path]:
        """The directories under watch now (retired ones included until they are flushed)."""
        return set(self._watches)

    def sync(self, wanted: dict[Path, Accept | None], appended: set[Path] | None = None) -> set[Path]:
        """Watches exactly ``wanted`` (each with its accept rule) plus ``appended`` (whose file appends
        matter too); returns the newly watched directories."""
        appended = appended or set()
        self._retired -= wanted.keys()
        for p in [p for p in self._watches if p not in wanted and p not in appended]:
            self.discard(p)
        fresh = {path for path in appended if path not in self._watches and self.add(path, MODIFY_MASK)}
        for path, accept in wanted.items():
            if path not in self._watches and self.add(path, accept=accept):
                fresh.add(path)
        return fresh

    def add(self, path: Path, mask: Mask = MASK, accept: Accept | None = None) -> bool:
        """Watches ``path``; True only when the watch is new (events before it were not seen)."""
        self._retired.discard(path)
        if path in self._watches:
            return False
        entry = self.reader.add_watch(path, mask, _DirCallback(self, path, accept))
        if entry is None:
            return False
        self._watches[path] = entry
        return True

    def retire(self, path: Path) -> None:
        """Stops watching ``path`` at the next ``flush_retired``: removing a watch costs a system call
        that a finishing build should not wait for. Until then its events still arrive."""
        if path in self._watches:
            self._retired.add(path)

    def flush_retired(self) -> None:
        retired, self._retired = self._retired, set()
        for path in retired:
            self.discard(path)

    def discard(self, path: Path) -> None:
        self._retired.discard(path)
        entry = self._watches.pop(path, None)
        if entry is not None:
            self.reader.remove_watch(entry)

    def close(self) -> None:
        """Every watch of this set removed; the set is no longer the reader's."""
        for path in list(self._watches):
            self.discard(path)
        self.reader.release(self)

    def dropped(self) -> None:
        """The descriptor was closed: the kernel removed every watch with it."""
        self._watches.clear()
        self._retired.clear()
