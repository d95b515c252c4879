"""Everything between the outbox and the destinations, for the daemon and ``buildtail backfill`` alike.

A ``Delivery`` opens the configured sinks (``daemon.sinks.registry``: Compass over HTTPS, or stdout
for a dry run), runs one sender per sink over its own outbox rows, and holds the delivery lock while
they run. A reload hands it new settings and each sink swaps what they change; everything queued
stays queued.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.lock import DeliveryLock
from daemon.delivery.sender import MissingSourceHook, Sender
from daemon.ops.metrics import Metrics
from daemon.sinks import Sink, Transport
from daemon.sinks.registry import as_opened, open_sinks
from daemon.store import OutboxItem, Store

__all__ = ["Delivery"]

log = logging.getLogger("buildtail")


def _creator(sink: Sink) -> MissingSourceHook:
    async def create(_item: OutboxItem, body: dict[str, Any]) -> bool:
        return await sink.create_missing(body)

    return create


class Delivery:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        dry_run: bool = False,
        transport: Transport | None = None,
        metrics: Metrics | None = None,
        lock: DeliveryLock | None = None,
    ) -> None:
        """``lock``: the daemon's; taken here if it is free, else once a backfill lets it go, and
        held until the senders stop (``close`` lets it go if they never ran). None when the caller
        holds it already (a backfill delivering while the daemon is down). ``transport`` replaces
        the first sink's (tests)."""
        self.settings = settings
        self.dry_run = dry_run
        self._store = store
        self.sinks: list[Sink] = open_sinks(settings, store, dry_run=dry_run, transport=transport)
        self.senders = [
            Sender(store, sink, on_missing_source=_creator(sink), metrics=metrics, primary=i == 0)
            for i, sink in enumerate(self.sinks)
        ]
        self.task: asyncio.Task[None] | None = None
        self._lock = lock
        if lock is not None:
            # taken now, before the daemon's catch-up, so that `buildtail status` sees the daemon
            # from its start; if a backfill holds it, the senders wait for it
            lock.dry_run = not self.for_real
            lock.try_acquire()

    @property
    def sender(self) -> Sender:
        """The first sink's (Compass's) sender: what ``status`` and the health checks report."""
        return self.senders[0]

    @property
    def bucket(self) -> TokenBucket:
        return self.sinks[0].bucket

    @property
    def transport(self) -> Transport:
        return self.sinks[0].transport

    @property
    def for_real(self) -> bool:
        """Whether events go to their destination (not to stdout)."""
        return self.sinks[0].for_real

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="delivery")

    async def _run(self) -> None:
        lock, first = self._lock, self.senders[0]
        waited = False
        while lock is not None and not lock.try_acquire() and not first.stopping:
            if not waited:
                waited = True
                log.info(
                    "another buildtail process (a backfill) is delivering from this state; waiting for it"
                )
            await first.wait(1.0)
        try:
            if not first.stopping:
                await asyncio.gather(*(sender.run() for sender in self.senders))
        finally:
            if lock is not None:
                lock.release()

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def failure(self) -> BaseException | None:
        """Why the delivery task ended, if it ended by an error (it never ends otherwise before stop)."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def stop(self, grace: float) -> None:
        """Requests already on the wire get up to ``grace`` seconds for their answer; the rest stays
        queued for the next start."""
        if self.task is None:
            return
        for sender in self.senders:
            sender.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except TimeoutError:
            log.warning("a request was still in flight after %.0fs; it stays queued", grace)
            self.task.cancel()
        except Exception:  # already reported by whoever watched the task
            pass
        await asyncio.gather(self.task, return_exceptions=True)

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.transport.close()
        if self._lock is not None:
            self._lock.release()  # the task released it, unless it never ran

    # --- while running ---------------------------------------------------------------------------

    def wake(self) -> None:
        """New events are queued (by this process or, through SIGUSR2, by a backfill beside it)."""
        for sender in self.senders:
            sender.wake()

    def resume(self) -> None:
        for sender in self.senders:
            sender.resume()

    @property
    def paused(self) -> str | None:
        return self.sender.paused

    @property
    def pause_cause(self) -> str | None:
        return self.sender.pause_cause

    def held_sinks(self) -> list[tuple[str, str, str]]:
        """The further sinks (not the first) paused by their credentials: (name, title, reason).
        Reported by ``/readyz`` but not a reason to be unready: the first sink's events still flow."""
        return [
            (x.sink.name, x.sink.title, x.paused)
            for x in self.senders[1:]
            if x.pause_cause == "credentials" and x.paused is not None
        ]

    async def reconfigure(self, new: Settings) -> None:
        """A reload: new credentials, site or budget take effect for the next request. A sink is
        opened or closed only at start: a reload adding or removing its section says so, once."""
        kept = as_opened(new, self.settings)
        if kept is not new:
            change = ("added", "start") if new.jira is not None else ("removed", "stop")
            log.warning("jira section %s: restart buildtail to %s sending to Jira", *change)
        self.settings = new = kept
        for sink in self.sinks:
            await sink.reconfigure(new, self._store, dry_run=self.dry_run)
