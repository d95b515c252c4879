"""``buildtail backfill``: send the history that the first start deliberately left out.

It queues every finished run started since the given time that this host never sent, oldest
first, at the lowest priority (live builds always go first), through the same event rules and the
same shared state as the daemon, so nothing is sent twice. If the daemon is running it delivers
them; otherwise the backfill delivers them itself, paced by the same rate budget. Interrupted, it
leaves its queue in the database: the daemon, or the next backfill, carries on from there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from daemon.config import Settings
from daemon.delivery.delivery import Delivery
from daemon.delivery.lock import DeliveryLock
from daemon.events import RunFacts, format_duration, iso_ms
from daemon.history import HistoryPolicy
from daemon.recorder import Recorder
from daemon.sources.jenkins.source import JenkinsSource
from daemon.store import PRIORITY_BACKFILL, Store

__all__ = ["Backfill", "find_history"]

SHUTDOWN_GRACE_S = 10.0  # an answer on its way when the backfill is interrupted is still recorded


def find_history(settings: Settings, store: Store, since_ms: int) -> list[RunFacts]:
    """Finished runs started at or after ``since_ms`` that this host has no record of, oldest first."""
    found: list[RunFacts] = []
    for cfg in settings.jenkins_sources:
        source = JenkinsSource(cfg, host=settings.host, changelog=settings.jira is not None)
        source.discover()
        for job in source.layout.jobs.values():
            for entry in source.runs_in(job):
                run_dir = Path(entry.path)
                try:  # a run that ended before the window started before it: skip without parsing
                    if (run_dir / "build.xml").stat().st_mtime * 1000 < since_ms:
                        continue
                except OSError:
                    continue
                facts = source.observe(run_dir)
                if not isinstance(facts, RunFacts) or facts.running or facts.start_ms < since_ms:
                    continue
                if store.latest_run(facts.source, facts.job, facts.number) is None:
                    found.append(facts)
    found.sort(key=lambda f: (f.start_ms, f.job, f.number))
    return found


def _since(started: float) -> str:
    return format_duration(int((time.monotonic() - started) * 1000))


def _eta(events: int, per_minute: int) -> str:
    if per_minute <= 0:
        return "no rate limit"
    return f"about {format_duration(int(events / per_minute * 60_000))} at {per_minute} per minute"


class _Bar:
    """The progress line on a terminal, redrawn in place with ``\r``. Anything else printed while it
    shows goes above it: the line is cleared, the text printed, the bar drawn again below."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.line = ""
        self._lock = threading.Lock()  # log records may come from other threads

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80  # 0: a size nobody set
        except (OSError, ValueError):
            return 80

    def draw(self, line: str) -> None:
        with self._lock:
            self.line = line[: max(self._columns() - 1, 20)]  # a wrapped bar cannot be redrawn in place
            self.out.write("\r\x1b[K" + self.line)
            self.out.flush()

    def above(self, text: str) -> None:
        with self._lock:
            self.out.write("\r\x1b[K" + text + "\n" + self.line)
            self.out.flush()

    def end(self) -> None:
        """The bar stays as it was last drawn; what follows starts on a line of its own."""
        with self._lock:
            if self.line:
                self.out.write("\n")
                self.out.flush()
            self.line = ""


class _AboveTheBar(logging.Handler):
    """Log records printed above the bar, formatted as the handler it stands in for would."""

    def __init__(self, bar: _Bar, replaced: logging.Handler) -> None:
        super().__init__(replaced.level)
        self.bar = bar
        self.setFormatter(replaced.formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bar.above(self.format(record))
        except Exception:
            self.handleError(record)


@contextmanager
def _logs_above(bar: _Bar) -> Iterator[None]:
    """While the bar shows, the log handlers that write to its terminal write above it instead.

    Held back and summarised at the end would be the other way; but a backfill can run for hours,
    and a paused delivery or a dead letter must be seen when it happens, not after.
    """
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers[:] = [
        _AboveTheBar(bar, h) if isinstance(h, logging.StreamHandler) and h.stream is bar.out else h
        for h in saved
    ]
    try:
        yield
    finally:
        root.handlers[:] = saved
        bar.end()


class Backfill:
    def __init__(
        self,
        settings: Settings,
        *,
        since_s: float,
        dry_run: bool,
        out: TextIO | None = None,
        to: tuple[str, ...] = ("compass",),
    ) -> None:
        self.settings = settings
        self.to = to  # the sinks history is queued for (each that wants it); Jira only when asked
        self.since_ms = int((time.time() - since_s) * 1000)
        self.dry_run = dry_run
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.bar = _Bar(self.out) if self.tty else None

    def say(self, text: str) -> None:
        if self.bar is not None and self.bar.line:
            self.bar.above(text)
        else:
            print(text, file=self.out, flush=True)

    async def run(self) -> int:
        store = Store(self.settings.state_dir)
        try:
            return await self._run(store)
        finally:
            store.close()

    async def _run(self, store: Store) -> int:
        s = self.settings
        history = await asyncio.to_thread(find_history, s, store, self.since_ms)
        limit = s.compass.rate_limit_per_minute if s.compass else 0
        since = datetime.fromtimestamp(self.since_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.say(f"{len(history)} finished run(s) started since {since} have not been sent from {s.host}.")
        if not history and not store.outbox_depth(PRIORITY_BACKFILL):
            return 0
        pending = len(history) + store.outbox_depth(PRIORITY_BACKFILL)
        self.say(f"Sending {pending} event(s) takes {_eta(pending, limit)}; live builds go first.")
        if self.dry_run:
            for facts in history:
                self.say(f"  {facts.job} #{facts.number}  {facts.result}  started {iso_ms(facts.start_ms)}")
            return 0
        recorder = Recorder(store, s, history=HistoryPolicy.backfill(self.since_ms), only=self.to)
        queued = sum(recorder.record(facts, priority=PRIORITY_BACKFILL) is not None for facts in history)
        self.say(f"Queued {queued} event(s).")
        lock = DeliveryLock(s.state_dir, kind="backfill")
        lock.dry_run = s.compass is None
        if not lock.try_acquire():
            lock.nudge()
            self.say(
                "The daemon is running and delivers them; showing progress (Ctrl-C stops watching only)."
            )
            with self._output():
                await self._progress(store, pending, limit)
            return 0
        self.say(
            "The daemon is not running: delivering them from here (Ctrl-C stops; the rest stays queued)."
        )
        delivery = Delivery(s, store)  # the lock is held here, for the whole delivery
        try:
            with self._output():
                delivery.start()
                try:
                    await self._progress(store, pending, limit, delivery)
                finally:
                    await delivery.stop(grace=SHUTDOWN_GRACE_S)
                    await delivery.close()
        finally:
            store.record_stop("backfill")  # interrupted or done, for `buildtail status`: not killed
            lock.release()
        return 0 if not store.outbox_depth(PRIORITY_BACKFILL) else 1

    def _output(self) -> AbstractContextManager[None]:
        return nullcontext() if self.bar is None else _logs_above(self.bar)

    async def _progress(self, store: Store, total: int, limit: int, delivery: Delivery | None = None) -> None:
        started = time.monotonic()
        last_line = 0.0
        while True:
            left = store.outbox_depth(PRIORITY_BACKFILL)
            done = total - left
            if self.tty or time.monotonic() - last_line >= 30 or left == 0:
                last_line = time.monotonic()
                self._show(done, total, left, limit, time.monotonic() - started)
            if left == 0:
                if self.bar is not None:
                    self.bar.end()
                self.say(f"Done: {total} event(s) delivered in {_since(started)}.")
                return
            if delivery is not None and not delivery.alive:
                if self.bar is not None:
                    self.bar.end()
                self.say("Delivery stopped; the rest stays queued.")
                return
            await asyncio.sleep(1.0)

    def _show(self, done: int, total: int, left: int, limit: int, elapsed: float) -> None:
        rate = done / elapsed * 60 if elapsed > 5 and done else float(limit or 0)
        eta = format_duration(int(left / rate * 60_000)) if rate > 0 else "?"
        width = 30
        filled = int(width * done / total) if total else width
        percent = done * 100 // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent}%  ETA {eta}"
        if self.bar is not None:
            self.bar.draw(line)
        else:
            self.say(line)
