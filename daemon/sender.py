"""The delivery loop: the outbox's oldest event to Compass, removed only once Compass answers 202.

Retries live in the outbox (``next_attempt_ms``), not in memory, so a backoff survives a restart.
Delivery is strictly in queue order: a run's updates can never overtake each other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from .compass import SendResult, Transport
from .store import OutboxItem, Store

__all__ = ["Sender", "backoff_delay"]

log = logging.getLogger("buildtail.sender")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
AUTH_RECHECK_S = 60.0
AUTH_LOG_EVERY_S = 300.0


def backoff_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempts)]."""
    return float(rng()) * min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2 ** min(attempts, 20)))


class Sender:
    def __init__(self, store: Store, transport: Transport, cloud_id: str) -> None:
        self._store = store
        self._transport = transport
        self._cloud_id = cloud_id
        self._wake = asyncio.Event()
        self._stopping = False
        self._auth_logged_at = 0.0
        self.last_delivery_ms: int | None = None
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            item, due_ms = self._store.next_due()
            if item is None:
                timeout = None if due_ms is None else max(0.0, due_ms / 1000 - time.time())
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            body = {"cloudId": self._cloud_id, **item.event}
            result = await self._transport.send(body)
            self._settle(item, result)

    def _settle(self, item: OutboxItem, result: SendResult) -> None:
        build = item.event["event"]["build"]
        name = build.get("displayName", item.pipeline_id)
        now = time.time()
        if result.outcome == "accepted":
            self._store.ack(item)
            self.delivered += 1
            self.last_delivery_ms = int(now * 1000)
            log.info("delivered %s %s (seq %d)", name, item.state, item.seq)
            return
        if result.outcome == "retry":
            delay = backoff_delay(item.attempts)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, BACKOFF_CAP_S))
            elif result.status == 429:
                delay = max(delay, 60.0 - now % 60.0)  # the budget is per minute: wait for the next one
            log.warning(
                "Compass did not take %s (%s); retrying in %.1fs", name, result.status or result.detail, delay
            )
            self._store.retry_later(item, int((now + delay) * 1000), f"{result.status}: {result.detail}")
            return
        if result.outcome in ("unauthorized", "not_found"):
            if now - self._auth_logged_at > AUTH_LOG_EVERY_S:
                self._auth_logged_at = now
                if result.outcome == "unauthorized":
                    log.error(
                        "Compass refused the credentials (HTTP %s); delivery paused, %d event(s) kept. "
                        "Check compass.email and the API token.",
                        result.status,
                        self._store.outbox_depth(),
                    )
                else:
                    log.error(
                        "Compass does not know the event source %r (HTTP 404: %s); delivery paused. Create "
                        "an event source of type BUILD with this externalEventSourceId and attach it to "
                        "the component, or set componentId.",
                        build.get("externalEventSourceId"),
                        result.detail[:200],
                    )
            self._store.retry_later(
                item, int((now + AUTH_RECHECK_S) * 1000), f"{result.status}: {result.detail}"
            )
            return
        log.error(
            "Compass rejected %s %s (HTTP %s): %s; kept as a dead letter, not retried",
            name,
            item.state,
            result.status,
            result.detail,
        )
        self._store.dead_letter(item, result.status, result.detail)
