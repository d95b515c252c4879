"""The service's loop in a few lines, for tests of runners in process: wait for a hint or the earliest
deadline, hand hints to their owners, let every runner do what is due."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from daemon.sources.runner import Runner
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import Store

__all__ = ["Loop"]


class Loop:
    """What the service does between hints, for the runners under test."""

    def __init__(
        self,
        store: Store,
        queue: asyncio.Queue[Hint],
        reader: InotifyReader,
        *,
        lose: Callable[[Hint], bool] | None = None,
    ) -> None:
        """``lose``: hints it says yes to never reach a runner, as if the kernel had dropped them."""
        self.store = store
        self.queue = queue
        self.reader = reader
        self.lose = lose
        self.lost: list[Hint] = []
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
            if self.lose is not None and self.lose(hint):
                self.lost.append(hint)
            elif hint.directory is None:
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
