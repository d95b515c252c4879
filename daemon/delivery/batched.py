"""The delivery loop's steps for a sink that takes several updates a request (Jira: up to 100).

Kept apart from ``sender`` (which it is mixed into) so that the loop for one update a request reads
as it did: the same guarantees hold here - a run never has two updates in flight, updates leave the
queue only when their own answer says so, and each answered update is settled by the sender's one
set of rules (``Sender._settle``). What differs: the due updates are taken together (one per run),
the first waits up to the sink's ``batch_window`` for company, one request of the budget is spent
per request and an accepted request counted once (not once per item it carried), and an update the
sink did not send this time (another kind, or superseded by a newer one of its run that is not
settled yet) goes back to the queue untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from daemon.delivery.budget import TokenBucket
from daemon.ops.metrics import Metrics
from daemon.sinks import SendResult, Sent, Sink
from daemon.store import OutboxItem, Store

__all__ = ["BatchSending"]

log = logging.getLogger("buildtail.sender")


class BatchSending:
    """``Sender``'s batch steps; the attributes are the sender's."""

    _store: Store
    sink: Sink
    metrics: Metrics | None
    primary: bool
    max_in_flight: int
    _wake: asyncio.Event
    _stopping: bool
    _in_flight: dict[int, asyncio.Task[None]]
    _flying: dict[int, OutboxItem]
    _bodies: dict[int, dict[str, Any]]
    _done: list[tuple[OutboxItem, SendResult]]
    _throttled_at: float

    @property
    def bucket(self) -> TokenBucket:
        return self.sink.bucket

    async def _settle_done(self) -> None:
        raise NotImplementedError

    async def _sleep(self, seconds: float | None, *, fresh: bool = False) -> None:
        raise NotImplementedError

    def _forget(self, item: OutboxItem) -> None:
        raise NotImplementedError

    def _budget_accepted(self) -> None:
        raise NotImplementedError

    async def _step_batch(self) -> None:
        """A batch sink's step: the due updates (one per run, none of a run in flight) go out
        together, up to its ``batch_size``; while fewer are due, the first one waits up to
        ``batch_window`` after it was queued for others to join it (a retried one does not wait)."""
        requests = {task for task in self._in_flight.values() if not task.done()}
        if len(requests) >= self.max_in_flight:
            await self._settle_done()
            await self._sleep(None)
            return
        answered = {item.id for item, _ in self._done}
        busy = {item.pipeline_id for item in self._flying.values() if item.id not in answered}
        exclude = set(self._in_flight)
        head, due_ms = self._store.next_due(sink=self.sink.name, exclude_ids=exclude, exclude_pipelines=busy)
        if head is None:
            if self._done:
                await self._settle_done()
                return
            await self._sleep(None if due_ms is None else max(0.0, due_ms / 1000 - time.time()))
            return
        items = self._store.due_items(
            self.sink.batch_size, sink=self.sink.name, exclude_ids=exclude, exclude_pipelines=busy
        )
        window_ends = head.created_ms / 1000 + self.sink.batch_window
        if head.attempts == 0 and len(items) < self.sink.batch_size and time.time() < window_ends:
            await self._settle_done()
            await self._sleep(window_ends - time.time())  # a new update queued looks again
            return
        if await self.bucket.acquire():
            self._throttled_at = time.monotonic()
        if self._stopping or not items:
            return
        task = asyncio.create_task(self._send_batch(items))
        for item in items:
            self._flying[item.id] = item
            self._in_flight[item.id] = task

    async def _send_batch(self, items: list[OutboxItem]) -> None:
        """One batch sink's request(s) for ``items``; each answered item is settled on its own."""
        started = time.monotonic()
        sent: list[Sent] = []
        try:
            sent = await self.sink.send_many(items)
        except Exception as exc:  # a bug must not leave the updates in flight
            log.exception("sending %d update(s) to %s failed", len(items), self.sink.title)
            failed = SendResult("retry", None, f"{type(exc).__name__}: {exc}")
            sent = [Sent(item, None, failed) for item in items]
        finally:
            answered = {s.item.id: s for s in sent}
            results = [s.result for s in sent if s.result is not None]
            if any(r.outcome == "accepted" for r in results):
                self._budget_accepted()  # one request, however many of its items Jira accepted
            if self.metrics is not None and self.primary and results:
                first = next((r for r in results if r.outcome == "accepted"), results[0])
                self.metrics.event_sent(first.outcome, first.status, time.monotonic() - started)
            for item in items:
                one = answered.get(item.id)
                if one is None or one.result is None:  # not sent this time: queued as it was
                    self._forget(item)
                    continue
                if one.body is not None:
                    self._bodies[item.id] = one.body
                self._done.append((item, one.result))
            self._wake.set()
