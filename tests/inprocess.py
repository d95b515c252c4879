"""The real ``Loop`` for tests that drive runners turn by turn in the test's own event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from daemon.loop import Loop
from daemon.sources.watch import Hint
from daemon.store import Store

__all__ = ["LossyQueue", "drain", "turn_until", "until"]


async def until(what: str, predicate: Callable[[], bool], within: float = 10.0) -> float:
    """Seconds until ``predicate`` holds, giving the event loop a turn between looks."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def turn_until(loop: Loop, what: str, predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Turn the real loop (short waits) until ``predicate`` holds."""
    end = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await loop.turn(0.05)


def drain(store: Store) -> dict[str, str]:
    """pipelineId -> state of every queued event (taken off the queue, as if delivered)."""
    out = {}
    while (item := store.next_due()[0]) is not None:
        out[item.pipeline_id] = item.state
        store.ack(item)
    return out


class LossyQueue(asyncio.Queue[Hint]):
    """The hints' queue with the kernel's worst habit: hints ``lose`` says yes to are dropped on the
    way in (kept in ``lost``), so the runners never hear of them."""

    def __init__(self, lose: Callable[[Hint], bool]) -> None:
        super().__init__()
        self.lose = lose
        self.lost: list[Hint] = []

    def put_nowait(self, item: Hint) -> None:
        if self.lose(item):
            self.lost.append(item)
            return
        super().put_nowait(item)
