"""The client-side rate budget: a token bucket that keeps every minute under Compass's limit.

Compass allows a fixed number of requests per user per minute. A bucket of ``burst`` tokens refilled
at ``(limit - burst) / 60`` per second admits at most ``burst + (limit - burst) = limit`` requests in
any 60-second window, so a steady workload never meets a 429. The bucket starts empty: after a
restart nobody remembers what the previous process spent, and an empty bucket is always safe.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, limit_per_minute: int, burst: int) -> None:
        self.limit = limit_per_minute
        self.burst = burst
        self.rate = (limit_per_minute - burst) / 60.0 if limit_per_minute else 0.0
        self._tokens = 0.0
        self._at = time.monotonic()
        self.spent = 0

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_time(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        if not self.enabled:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self) -> None:
        self.spent += 1
        if self.enabled:
            self._refill()
            self._tokens -= 1.0

    async def acquire(self) -> None:
        delay = self.wait_time()
        if delay > 0:
            await asyncio.sleep(delay + 0.001)  # a hair longer: the token is whole when taken
        self.take()
