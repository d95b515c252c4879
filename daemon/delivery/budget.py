"""The client-side rate budget: never more requests in any minute than Compass allows this sender,
across restarts, and a share of an account that other hosts use too.

Compass counts requests per account per minute, and every build server of an organisation may use
the same account. Three rules, in this order:

- **Exact across restarts.** The time of every request (events and GraphQL alike) is kept in the
  state database for a minute (``on_take``), and a new process starts from them (``sent_ms``): it
  spends exactly what is left of the last minute, with no needless wait after a quick restart and
  no way for a crash loop to go over the limit. A request is allowed only while fewer than the
  paced limit were sent in the last 60 s.
- **Smooth.** A token bucket of ``burst`` tokens, refilled at ``(paced - burst) / 60`` per second,
  spreads the requests: a backlog does not go out as one burst of the whole minute's budget.
- **Converging on a share nobody announces.** A 429 means the account's minute is full, and what
  each host got accepted in that minute is its share of it: the paced limit falls to a little under
  this host's share, so hosts sharing an account settle on shares that add up to less than the
  limit, in one step (a host that just started and had no time to take a share falls by at most
  three quarters a step). While there is work to send the limit then grows back the way TCP CUBIC
  grows a window: quickly at first, flat around the share it was cut from (reached after
  ``REGAIN_S``), then faster again, so a stable sharing meets few 429s and a host left alone gets
  its whole ``rate_limit_per_minute`` back within minutes; never above it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from daemon.clock import now_ms

__all__ = ["TokenBucket"]

WINDOW_S = 60.0
DECREASE = 0.85  # on a 429: this much of what was accepted in the last minute
DECREASE_EVERY_S = 10.0  # several 429s in flight together are one signal
MAX_FALL = 0.25  # one decrease keeps at least this much of the paced limit
REGAIN_S = 120.0  # after a decrease, the share it was cut from is regained in this long
MIN_PER_MINUTE = 1.0


class TokenBucket:
    def __init__(
        self,
        limit_per_minute: int,
        burst: int,
        *,
        sent_ms: Iterable[int] = (),
        paced_per_minute: float | None = None,
        on_take: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
    ) -> None:
        """``sent_ms``: wall-clock times of the requests of the last minute (an earlier process's);
        ``paced_per_minute``: where an earlier process had paced itself to (a shared account);
        ``clock`` and ``wall_ms``: the clocks (tests run minutes of them in milliseconds)."""
        self.limit = limit_per_minute
        self.burst = burst
        self.on_take = on_take
        self._clock = clock
        self._wall_ms = wall_ms
        self.spent = 0
        self.paced = float(limit_per_minute)
        if paced_per_minute is not None and limit_per_minute:
            self.paced = min(float(limit_per_minute), max(MIN_PER_MINUTE, paced_per_minute))
        now = clock()
        wall = wall_ms()
        self._sent: deque[float] = deque(
            sorted(now - (wall - t) / 1000 for t in sent_ms if 0 <= wall - t < WINDOW_S * 1000)
        )
        # what was accepted from this host in the last minute; an earlier process's requests count as
        # accepted (most were): its share of the account's minute is this host's too
        self._accepted: deque[float] = deque(self._sent)
        self._tokens = self._replay(now)
        self._at = now
        self._decreased_at: float | None = None
        self._ceiling = self.paced  # the share the last decrease was cut from

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def capacity(self) -> float:
        """The bucket's size at the paced limit: ``burst`` at the full limit, less below it."""
        return max(1.0, self.burst * self.paced / self.limit) if self.limit else float(self.burst)

    @property
    def rate(self) -> float:
        """Tokens per second (at least one a minute: the window keeps a small limit exact)."""
        return max(1.0, self.paced - self.capacity) / 60.0 if self.limit else 0.0

    def _replay(self, now: float) -> float:
        """The tokens a bucket that was full a minute ago holds after the requests it knows of."""
        if not self.enabled:
            return 0.0
        tokens, at = self.capacity, now - WINDOW_S
        for sent in self._sent:
            tokens = min(self.capacity, tokens + (sent - at) * self.rate) - 1.0
            at = sent
        return min(self.capacity, tokens + (now - at) * self.rate)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def sent_last_minute(self) -> int:
        self._forget(self._clock())
        return len(self._sent)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - WINDOW_S:
            self._sent.popleft()
        while self._accepted and self._accepted[0] <= now - WINDOW_S:
            self._accepted.popleft()

    def wait_time(self) -> float:
        """Seconds until a request may go (0 when one may now)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        self._refill()
        self._forget(now)
        bucket = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
        window = 0.0
        if len(self._sent) >= int(self.paced):  # the minute is spent: wait for its oldest request to age
            window = self._sent[len(self._sent) - int(self.paced)] + WINDOW_S - now
        return max(bucket, window)

    def take(self) -> None:
        self.spent += 1
        now = self._clock()
        self._forget(now)
        self._sent.append(now)
        if not self.enabled:
            return
        self._refill()
        self._tokens -= 1.0
        if self.on_take is not None:
            self.on_take(self._wall_ms())

    async def acquire(self) -> bool:
        """Waits for the budget and spends one request of it; returns whether it had to wait."""
        waited = False
        while (delay := self.wait_time()) > 0:
            waited = True
            await asyncio.sleep(delay + 0.001)  # a hair longer: the token is whole when taken
        self.take()
        return waited

    # --- what Compass answered ------------------------------------------------------------------

    def accepted(self, *, more_waiting: bool) -> None:
        """A request was accepted; with work still waiting, the paced limit grows back."""
        if not self.enabled:
            return
        now = self._clock()
        self._accepted.append(now)
        if more_waiting and self._decreased_at is not None and self.paced < self.limit:
            self.paced = min(float(self.limit), max(self.paced, self._regained(now)))

    def _regained(self, now: float) -> float:
        """CUBIC's curve: the decreased limit at the decrease, the ceiling REGAIN_S later, and
        beyond it growing as fast as it came back."""
        assert self._decreased_at is not None
        steepness = self._ceiling * (1 - DECREASE) / REGAIN_S**3
        return self._ceiling + steepness * (now - self._decreased_at - REGAIN_S) ** 3

    def rate_limited(self) -> None:
        """Compass answered 429: the account's minute is full, and this host had its share of it."""
        if not self.enabled:
            return
        now = self._clock()
        self._forget(now)
        if self._decreased_at is not None and now - self._decreased_at < DECREASE_EVERY_S:
            return
        self._decreased_at = now
        # a host that had little time to take its share (it just started) falls by at most this much
        share = max(float(len(self._accepted)), self.paced * MAX_FALL)
        self._ceiling = max(MIN_PER_MINUTE, min(self.paced, share))
        self.paced = max(MIN_PER_MINUTE, self._ceiling * DECREASE)
        self._refill()
        self._tokens = min(self._tokens, 0.0)  # no burst when the pause is over
