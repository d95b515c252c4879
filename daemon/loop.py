"""The main loop between startup and shutdown, on its own so tests drive the real one in process.

One ``turn``: wait until a hint arrives or the earliest runner deadline passes, hand each hint to the
runner whose watches produced it, and let every runner do what is due. The two hints that are about
no directory are handled here: ``OVERFLOW`` (the kernel lost events: every runner scans again) and
a reader thread that ended unasked (a new one is started, then every runner scans again). The
service splits a turn in two (``wait``, then ``run``) to reload its configuration in between, so
hints that arrived meanwhile go to the runners of the new configuration.
"""

from __future__ import annotations

import asyncio
import logging
import time

from daemon.ops.metrics import Metrics
from daemon.sources.runner import Runner
from daemon.sources.watch import OVERFLOW, Hint, InotifyReader

__all__ = ["IDLE_WAKE_S", "READER_RETRY_S", "Loop"]

log = logging.getLogger("buildtail")

IDLE_WAKE_S = 60.0  # the longest wait when no runner has anything due
READER_RETRY_S = 5.0  # a new inotify reader that could not be started is tried again this often


class Loop:
    """The hints' queue, the runners and the inotify reader they share, and what connects them.

    ``runners`` is the caller's list (the service adds and removes runners on reload); ``reader`` is
    set by whoever starts one (None while no source watches with inotify).
    """

    def __init__(
        self,
        hints: asyncio.Queue[Hint],
        runners: list[Runner],
        metrics: Metrics,
        reader: InotifyReader | None = None,
    ) -> None:
        self.hints = hints
        self.runners = runners
        self.metrics = metrics
        self.reader = reader
        self._reader_retry_at = float("inf")

    async def turn(self, at_most: float = IDLE_WAKE_S) -> list[Hint]:
        """One pass: wait (at most ``at_most`` seconds), dispatch, run what is due; the hints seen."""
        batch = await self.wait(at_most)
        await self.run(batch)
        return batch

    async def wait(self, at_most: float = IDLE_WAKE_S) -> list[Hint]:
        """Every hint that arrives before the earliest deadline, waiting for the first."""
        if self.reader is not None and self.hints.empty():
            self.reader.flush_retired()  # nothing waiting: a moment for the bookkeeping
        now = time.monotonic()
        deadline = min([r.deadline() for r in self.runners], default=now + at_most)
        deadline = min(deadline, self._reader_retry_at, now + at_most)
        batch: list[Hint] = []
        timeout = deadline - time.monotonic()
        if timeout > 0:
            try:
                batch.append(await asyncio.wait_for(self.hints.get(), timeout))
            except TimeoutError:
                pass
        while not self.hints.empty():
            batch.append(self.hints.get_nowait())
        return batch

    async def run(self, batch: list[Hint]) -> None:
        """Hand ``batch`` to the runners, restart a reader that stopped, let every runner do what is due."""
        self.dispatch(batch)
        if self.reader is not None and self.reader.stopped:
            self._restart_reader()
        for runner in list(self.runners):
            await runner.due()

    def dispatch(self, batch: list[Hint]) -> None:
        by_name = {r.name: r for r in self.runners}
        if OVERFLOW in batch:
            log.warning("the inotify queue overflowed; scanning everything again")
            self.metrics.inotify_overflow()
            self._rescan_all()
        for hint in batch:
            if hint.directory is not None and (owner := by_name.get(hint.owner)) is not None:
                owner.claim(hint)

    def _rescan_all(self) -> None:
        """Events were lost: each runner scans its sources and adds its watches again."""
        for runner in self.runners:
            runner.overflow()

    def _restart_reader(self) -> None:
        """The inotify reader thread ended unasked (``READER_STOPPED``, or found dead on a wake-up): a
        new one, every watch added again by the rescan that follows. Until a new one starts, the
        rescans every ``READER_RETRY_S`` are the sources' polling."""
        reader = self.reader
        assert reader is not None
        if self._reader_retry_at == float("inf"):  # once per stop, not once per retry
            error = reader.stopped_error
            log.error(
                "the inotify reader stopped (%s); starting a new one and scanning everything again",
                "no error" if error is None else f"{type(error).__name__}: {error}",
            )
            self.metrics.inotify_reader_stopped()
        try:
            reader.restart()
        except OSError as exc:
            if self._reader_retry_at == float("inf"):
                log.error(
                    "cannot start a new inotify reader (%s); rescanning every %gs until one starts",
                    exc.strerror or exc,
                    READER_RETRY_S,
                )
            self._reader_retry_at = time.monotonic() + READER_RETRY_S
        else:
            if self._reader_retry_at != float("inf"):
                log.info("a new inotify reader runs again")
            self._reader_retry_at = float("inf")
        self._rescan_all()
