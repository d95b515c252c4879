"""Runs one log or result-file source for the service: when to poll, and committing what it yields.

Polls happen off the event loop, one item at a time (a 1 GB log never sits in memory as a list);
each item's events and its checkpoint are committed in one transaction on the loop, and only then
is the source told that its checkpoint is safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from daemon.clock import now_ms
from daemon.config import LogSourceSettings, ResultFileSourceSettings
from daemon.ops.logs import about
from daemon.sources.files.sources import (
    STARTED_MARK,
    FileBatch,
    LogSource,
    ResultFileSource,
    checkpoint_value,
)
from daemon.sources.files.tailer import Problem
from daemon.sources.runner import RunnerContext, Summary
from daemon.sources.watch import Accept, Hint
from daemon.store import STORE_RETRY_S

__all__ = ["FileSourceRunner"]

log = logging.getLogger("buildtail.files")

INOTIFY_SAFETY_POLL_S = 10.0  # with inotify hints, the periodic glob is only the safety net

FileSource = LogSource | ResultFileSource


class FileSourceRunner:
    def __init__(self, cfg: LogSourceSettings | ResultFileSourceSettings, ctx: RunnerContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.store = ctx.store
        self.recorder = ctx.recorder
        self._saved: dict[str, Any] = ctx.store.checkpoints(cfg.name)  # checkpoints as last written
        self.source: FileSource
        if isinstance(cfg, LogSourceSettings):
            self.source = LogSource(cfg, host=ctx.host, checkpoints=self._saved)
        else:
            self.source = ResultFileSource(cfg, host=ctx.host, checkpoints=self._saved)
        inotify = cfg.watch == "inotify" and ctx.reader is not None
        self.watch = ctx.reader.watcher(self.name) if inotify and ctx.reader is not None else None
        self._next = 0.0

    # --- the Runner protocol ---------------------------------------------------------------------

    async def start(self, *, first_start: bool) -> None:
        """Everything due now, before READY. ``first_start``: the history policy met this source for
        the first time, so what its files hold now is history. A source with checkpoints is never new
        to the policy, so this agrees with the source's own first-poll marks; it is said here so that
        one place decides."""
        if first_start:
            self.source.first_look()
        self._sync_watches()
        await self.due()  # which watches what the first poll found

    def interval(self) -> float:
        if self.watch is not None:
            return max(self.cfg.poll_interval, INOTIFY_SAFETY_POLL_S)
        return self.cfg.poll_interval

    def deadline(self) -> float:
        return self._next

    def claim(self, hint: Hint) -> None:
        """Something changed in a directory the source reads from: poll now."""
        self._next = 0.0

    def overflow(self) -> None:
        self._next = 0.0

    async def due(self) -> None:
        if self._next > time.monotonic():
            return
        self._next = time.monotonic() + self.interval()
        await self._poll()
        self._sync_watches()

    def wanted(self) -> tuple[dict[Path, Accept | None], set[Path]]:
        return {}, self.source.watched_dirs()

    def summary(self) -> Summary:
        return Summary(file_source=True)

    async def close(self) -> None:
        if isinstance(self.source, LogSource):
            self.source.tailer.close()
        if self.watch is not None:
            self.watch.close()

    # --- polling ---------------------------------------------------------------------------------

    def _sync_watches(self) -> None:
        if self.watch is not None:
            self.watch.sync(*self.wanted())

    async def _poll(self) -> None:
        """Reads and commits what is new."""
        source = self.source
        items = source.poll()
        while (item := await asyncio.to_thread(next, items, None)) is not None:
            if isinstance(item, Problem):
                # news already: the source reports a persistent problem once, again once it cleared
                log.warning("%s: %s", self.name, item.message, extra=about(source=self.name, path=item.path))
                continue
            if not self._commit(item):
                self._next = time.monotonic() + STORE_RETRY_S
                return  # what was not committed is read again on the next poll
        if isinstance(source, LogSource):
            self._save_positions(source)

    def _commit(self, batch: FileBatch) -> bool:
        def work() -> None:
            for facts in batch.facts:
                self.recorder.record(facts, arrived=batch.arrived)
            if batch.checkpoint is not None:
                self.store.save_checkpoint(self.name, *batch.checkpoint)

        if not self.recorder.record_many(work, f"{self.name}: the input is read again"):
            return False
        if batch.checkpoint is not None:
            self._saved[batch.checkpoint[0]] = batch.checkpoint[1]
        if batch.after_commit is not None:
            batch.after_commit()
        return True

    def _save_positions(self, source: LogSource) -> None:
        """Files skipped to their end (first start) or just opened have positions worth keeping.

        Compared with what this runner last wrote, so a quiet poll writes nothing at all.
        """
        saved = self._saved
        changes = {cp.key: checkpoint_value(cp) for cp in source.tailer.checkpoints()}
        changes = {k: v for k, v in changes.items() if saved.get(k) != v}
        if STARTED_MARK not in saved:
            changes[STARTED_MARK] = {"at_ms": now_ms()}
        if not changes:
            return

        def work() -> None:
            for key, value in changes.items():
                self.store.save_checkpoint(self.name, key, value)

        # on failure they are kept in memory: written with the next chunk or the next poll
        if self.recorder.record_many(work, f"{self.name}: file positions are kept"):
            saved.update(changes)
