"""Runs the log and result-file sources for the service: when to poll, and committing what they yield.

Polls happen off the event loop, one item at a time (a 1 GB log never sits in memory as a list);
each item's events and its checkpoint are committed in one transaction on the loop, and only then
is the source told that its checkpoint is safe.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import RunFacts
from .file_sources import STARTED_MARK, FileBatch, LogSource, ResultFileSource, checkpoint_value
from .source_settings import LogSourceSettings, ResultFileSourceSettings
from .store import Store
from .tailer import Problem

__all__ = ["FileSourceRunner"]

log = logging.getLogger("buildtail.files")

INOTIFY_SAFETY_POLL_S = 10.0  # with inotify hints, the periodic glob is only the safety net
STORE_RETRY_S = 5.0

Recorder = Callable[[RunFacts, bool], None]  # (facts, apply the history cutoff)
FileSource = LogSource | ResultFileSource


class FileSourceRunner:
    def __init__(
        self,
        configs: list[LogSourceSettings | ResultFileSourceSettings],
        *,
        host: str,
        store: Store,
        record: Recorder,
    ) -> None:
        self.store = store
        self.record = record
        self.sources: list[FileSource] = []
        self._saved: dict[str, dict[str, Any]] = {}  # per source: checkpoints as last written
        for cfg in configs:
            checkpoints = self._saved[cfg.name] = store.checkpoints(cfg.name)
            if isinstance(cfg, LogSourceSettings):
                self.sources.append(LogSource(cfg, host=host, checkpoints=checkpoints))
            else:
                self.sources.append(ResultFileSource(cfg, host=host, checkpoints=checkpoints))
        self._next: dict[str, float] = {s.name: 0.0 for s in self.sources}
        self._problems_logged: set[str] = set()
        self._store_trouble = False

    def interval(self, source: FileSource) -> float:
        if source.cfg.watch == "inotify":
            return max(source.cfg.poll_interval, INOTIFY_SAFETY_POLL_S)
        return source.cfg.poll_interval

    def watched_dirs(self) -> set[Path]:
        dirs: set[Path] = set()
        for source in self.sources:
            if source.cfg.watch == "inotify":
                dirs |= source.watched_dirs()
        return dirs

    def hint(self, directory: Path) -> bool:
        """Something changed in a directory: poll the sources that read from it now."""
        hit = False
        for source in self.sources:
            if source.cfg.watch == "inotify" and directory in source.watched_dirs():
                self._next[source.name] = 0.0
                hit = True
        return hit

    def deadline(self) -> float:
        return min(self._next.values(), default=time.monotonic() + 3600)

    async def due(self) -> None:
        now = time.monotonic()
        for source in self.sources:
            if self._next[source.name] <= now:
                self._next[source.name] = time.monotonic() + self.interval(source)
                await self.poll(source)

    async def poll(self, source: FileSource) -> None:
        items = source.poll()
        while (item := await asyncio.to_thread(next, items, None)) is not None:
            if isinstance(item, Problem):
                if item.message not in self._problems_logged:
                    self._problems_logged.add(item.message)
                    log.warning("%s: %s", source.name, item.message)
                continue
            if not self._commit(source, item):
                self._next[source.name] = time.monotonic() + STORE_RETRY_S
                return  # what was not committed is read again on the next poll
        if isinstance(source, LogSource):
            self._save_positions(source)

    def _commit(self, source: FileSource, batch: FileBatch) -> bool:
        try:
            with self.store.batch():
                for facts in batch.facts:
                    self.record(facts, batch.history)
                if batch.checkpoint is not None:
                    self.store.save_checkpoint(source.name, *batch.checkpoint)
        except sqlite3.Error as exc:
            if not self._store_trouble:
                self._store_trouble = True
                log.error(
                    "%s: cannot write the state database (%s); the input is read again later",
                    source.name,
                    exc,
                )
            return False
        self._store_trouble = False
        if batch.checkpoint is not None:
            self._saved[source.name][batch.checkpoint[0]] = batch.checkpoint[1]
        if batch.after_commit is not None:
            batch.after_commit()
        return True

    def _save_positions(self, source: LogSource) -> None:
        """Files skipped to their end (first start) or just opened have positions worth keeping.

        Compared with what this runner last wrote, so a quiet poll writes nothing at all.
        """
        saved = self._saved[source.name]
        changes = {cp.key: checkpoint_value(cp) for cp in source.tailer.checkpoints()}
        changes = {k: v for k, v in changes.items() if saved.get(k) != v}
        if STARTED_MARK not in saved:
            changes[STARTED_MARK] = {"at_ms": time.time_ns() // 1_000_000}
        if not changes:
            return
        try:
            with self.store.batch():
                for key, value in changes.items():
                    self.store.save_checkpoint(source.name, key, value)
        except sqlite3.Error:
            return  # kept in memory; written with the next chunk or the next poll
        saved.update(changes)
