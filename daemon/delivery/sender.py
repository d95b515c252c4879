"""The delivery loop: a sink's next queued event out, removed only once the destination accepts it.

The same loop for every sink (``daemon.sinks.Sink``): the sink renders the request body, sends it
and reads the answer; what follows from the answer is decided here. This is where a 429 is handled:
the budget slows down (``TokenBucket.rate_limited``), and every event waits out ``Retry-After`` or,
without one, a minute.

Retries live in the outbox (``next_attempt_ms``), not in memory, so a backoff survives a restart.
Every request first takes a token from the rate budget. Terminal events go before IN_PROGRESS ones
(the store's order); one run never has two events queued at once, so a run's updates cannot
overtake each other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from daemon.clock import now_ms
from daemon.delivery.batched import BatchSending
from daemon.delivery.budget import TokenBucket
from daemon.ops.logs import LogOnce, about
from daemon.ops.metrics import Metrics
from daemon.sinks import Outcome, SendResult, Sink, Transport
from daemon.store import STORE_RETRY_S, Answered, OutboxItem, Store

__all__ = [
    "NOT_COMPASS_PAUSE_AFTER",
    "NOT_COMPASS_RECHECK_S",
    "MissingSourceHook",
    "PauseCause",
    "Sender",
    "backoff_delay",
]

log = logging.getLogger("buildtail.sender")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
AUTH_RECHECK_S = 60.0
# Answers from something other than Compass (see daemon/sinks/compass/answers.py) in a row before delivery
# pauses: one could be a blip, three in a row is a proxy or a captive portal in the way.
NOT_COMPASS_PAUSE_AFTER = 3
# Re-checked sooner than the credentials: these requests do not reach Compass (nothing of the
# account's budget is spent), and a portal logged into or a proxy fixed is noticed within seconds.
NOT_COMPASS_RECHECK_S = 10.0
PROBLEM_LOG_EVERY_S = 300.0  # a persistent problem (paused delivery, a broken database) is said this often
RATE_LIMIT_WINDOW_S = 60.0
BUDGET_PUBLISH_S = 5.0
SETTLE_BATCH = 64  # accepted answers acknowledged at the latest together

MissingSourceHook = Callable[[OutboxItem, dict[str, Any]], Awaitable[bool]]
PauseCause = Literal["credentials", "event_source", "not_compass"]
_CAUSE_OF: dict[Outcome, PauseCause] = {
    "unauthorized": "credentials",
    "not_found": "event_source",
    "not_compass": "not_compass",
}


def backoff_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempts)]."""
    return float(rng()) * min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2 ** min(attempts, 20)))


class Sender(BatchSending):
    def __init__(
        self,
        store: Store,
        sink: Sink,
        *,
        on_missing_source: MissingSourceHook | None = None,
        metrics: Metrics | None = None,
        max_in_flight: int = 4,
        not_compass_recheck_s: float = NOT_COMPASS_RECHECK_S,
        primary: bool = True,
    ) -> None:
        self._store = store
        self.sink = sink
        self.on_missing_source = on_missing_source
        self.metrics = metrics
        self.primary = primary  # the first sink's requests are also the unlabelled metrics' series
        if metrics is not None:
            metrics.sink_opened(sink.name)
        self._wake = asyncio.Event()
        self._stopping = False
        self._log_once = LogOnce(log, every=PROBLEM_LOG_EVERY_S)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._flying: dict[int, OutboxItem] = {}
        self._bodies: dict[int, dict[str, Any]] = {}  # what was sent for each event in flight
        self._done: list[tuple[OutboxItem, SendResult]] = []
        self.max_in_flight = max_in_flight
        self._hold_until = 0.0
        self._budget_published = -BUDGET_PUBLISH_S
        self._throttled_at = -RATE_LIMIT_WINDOW_S
        self.last_delivery_ms: int | None = None
        self.delivered = 0
        self.paused: str | None = None
        self.pause_cause: PauseCause | None = None
        self.not_compass_recheck_s = not_compass_recheck_s
        self._not_compass_streak = 0  # answers from something other than Compass in a row
        self._last_counted: SendResult | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    @property
    def transport(self) -> Transport:
        return self.sink.transport

    @property
    def bucket(self) -> TokenBucket:
        return self.sink.bucket

    def resume(self) -> None:
        """Credentials or configuration changed: try the paused events again now."""
        self._hold_until = 0.0
        if self.paused is not None:
            log.info("delivery resumes (was paused: %s)", self.paused)
        self._store.release_paused(self.sink.name)
        self._set_paused(None)
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def wait(self, seconds: float) -> None:
        """Until a wake-up (a stop) or ``seconds`` pass."""
        await self._sleep(seconds, fresh=True)

    async def run(self) -> None:
        try:
            # a pause recorded by an earlier process is not this one's: it finds out for itself
            if self._store.delivery_state(self.sink.name)[0] is not None:
                self._store.set_delivery_state(None, sink=self.sink.name)
        except sqlite3.Error:
            pass  # the loop below meets the same trouble and reports it
        try:
            while not self._stopping:
                try:
                    await self._step()
                except sqlite3.Error as exc:
                    self._log_once(
                        "store",
                        logging.ERROR,
                        "the state database is not usable (%s); retrying in %.0fs",
                        exc,
                        STORE_RETRY_S,
                    )
                    await self._sleep(STORE_RETRY_S, fresh=True)
        finally:
            # answers kept for acknowledging first: the wait below may be cut short by the service
            await self._settle_done()
            # requests already on the wire are given their answer (the service bounds the wait)
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await self._settle_done()

    async def _step(self) -> None:
        """Sending comes before acknowledging: while events wait to go out, answers that were
        accepted are kept (up to SETTLE_BATCH) and acknowledged together once nothing else is to
        be done. Any other answer is settled at once, since it can hold every event back."""
        self._wake.clear()
        if len(self._done) >= SETTLE_BATCH or any(r.outcome != "accepted" for _, r in self._done):
            await self._settle_done()
        hold = self._hold_until - time.monotonic()
        if hold > 0:  # Compass asked for a pause (Retry-After, 429, 5xx): it applies to every event
            await self._settle_done()
            await self._sleep(hold)
            return
        if self.sink.batch_size > 1:
            await self._step_batch()
            return
        if len(self._in_flight) - len(self._done) >= self.max_in_flight:
            await self._settle_done()
            await self._sleep(None)  # a completion wakes us
            return
        # a run with a request still unanswered waits; one whose answer was accepted and is only
        # waiting to be acknowledged does not (acknowledgements keep the order of the answers)
        answered = {item.id for item, _ in self._done}
        busy = {item.pipeline_id for item in self._flying.values() if item.id not in answered}
        item, due_ms = self._store.next_due(
            sink=self.sink.name, exclude_ids=set(self._in_flight), exclude_pipelines=busy
        )
        if item is None:
            if self._done:  # acknowledging may free a run's next event: look again after it
                await self._settle_done()
                return
            await self._sleep(None if due_ms is None else max(0.0, due_ms / 1000 - time.time()))
            return
        if await self.bucket.acquire():
            self._throttled_at = time.monotonic()  # more to send than the budget allows
        if self._stopping:
            return
        self._flying[item.id] = item
        self._in_flight[item.id] = asyncio.create_task(self._send(item))

    async def _send(self, item: OutboxItem) -> None:
        """One request; a run's events are never in flight together (see next_due's exclusions)."""
        started = time.monotonic()
        result = SendResult("retry", None, "the request was not made")
        try:
            body = self._bodies[item.id] = self.sink.render(item)
            result = await self.sink.transport.send(body)
        except Exception as exc:  # a bug or an unreadable token file must not leave the event in flight
            log.exception("sending %s failed", item.pipeline_id)
            result = SendResult("retry", None, f"{type(exc).__name__}: {exc}")
        finally:
            if self.metrics is not None and self.primary:
                self.metrics.event_sent(result.outcome, result.status, time.monotonic() - started)
            self._done.append((item, result))
            self._wake.set()

    async def _settle_done(self) -> None:
        """Answers that came back: accepted ones acknowledged together in one transaction."""
        if not self._done:
            return
        done, self._done = self._done, []
        accepted = [(i, r) for i, r in done if r.outcome == "accepted"]
        try:
            # a lost acknowledgement only means the event is sent again with the same sequence
            # number, which Compass ignores: no need to wait for the disk here
            with self._store.batch(durable=False):
                self._store.ack_many(
                    [item for item, _ in accepted], [self._answered(i, r) for i, r in accepted]
                )
                for item, result in accepted:
                    await self._settle(item, result, acked=True)
        except sqlite3.Error:
            self._done = done + self._done  # answered but not yet recorded: they stay in flight
            raise
        for item, _ in accepted:
            self._forget(item)
        rest = [(i, r) for i, r in done if r.outcome != "accepted"]
        while rest:
            item, result = rest[0]
            try:
                await self._settle(item, result)
            except sqlite3.Error:
                self._done = rest + self._done  # not recorded yet: they stay in flight, tried again
                raise
            rest.pop(0)
            self._forget(item)
        self._publish_budget()

    def _answered(self, item: OutboxItem, result: SendResult) -> Answered:
        """The answer as the record of answers keeps it, with where the event went."""
        body = self._bodies.get(item.id)
        source, component = self.sink.route(body) if body else (None, None)
        return Answered(result.status, result.detail, source, component)

    def _forget(self, item: OutboxItem) -> None:
        self._in_flight.pop(item.id, None)
        self._flying.pop(item.id, None)
        self._bodies.pop(item.id, None)

    def _publish_budget(self) -> None:
        """Budget use for ``buildtail status``; written at most every few seconds, never while idle."""
        now = time.monotonic()
        if now - self._budget_published < BUDGET_PUBLISH_S:
            return
        self._budget_published = now
        self._store.set_sink_fact(
            self.sink.name,
            "budget",
            {
                "limit": self.bucket.limit,
                "burst": self.bucket.burst,
                "paced": self.bucket.paced,
                "tokens": self.bucket.tokens,
                "sent_last_minute": self.bucket.sent_last_minute(),
                "at_ms": now_ms(),
            },
        )

    async def _sleep(self, seconds: float | None, *, fresh: bool = False) -> None:
        """Waits for a wake-up or the timeout. A wake-up set since the current step began is kept
        (``_step`` clears the event first), so a completion racing with the decision to sleep is
        never lost; ``fresh`` waits for a new one."""
        if fresh:
            self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    def _budget_accepted(self) -> None:
        """A request was accepted: the budget counts requests (its share of the account's minute)."""
        self.bucket.accepted(more_waiting=time.monotonic() - self._throttled_at < RATE_LIMIT_WINDOW_S)

    async def _settle(self, item: OutboxItem, result: SendResult, *, acked: bool = False) -> None:
        """What an answer means for ``item``; ``acked``: an accepted one already acknowledged in
        the store (``_settle_done`` acknowledges a batch at once)."""
        body = self._bodies.get(item.id, {})
        name = self.sink.describe(body, item) if body else item.pipeline_id
        title = self.sink.title
        now = time.time()
        if self.metrics is not None:
            self.metrics.sink_answer(self.sink.name, result.outcome, result.status)
        once = result is not self._last_counted  # a batch's items share their request's answer
        self._last_counted = result
        if result.outcome == "not_compass":
            self._not_compass_streak += 1 if once else 0
            if self._not_compass_streak >= NOT_COMPASS_PAUSE_AFTER:
                self._pause_not_compass(item, result, now)
                return
        elif result.status is not None:  # an answer from Compass; a connection error says nothing
            self._not_compass_streak = 0
        if result.outcome == "accepted":
            if self.sink.batch_size <= 1:  # a batch sink's request is counted once (_send_batch)
                self._budget_accepted()
            self.delivered += 1
            self.last_delivery_ms = int(now * 1000)
            if not acked:
                self._store.ack(item)
            if self.paused is not None:
                # Compass takes events again: those held by the pause need not wait for their re-check
                log.info("delivery resumes: %s accepted %s (was paused: %s)", title, name, self.paused)
                self._store.release_paused(self.sink.name)
                self._set_paused(None)
                for key in _CAUSE_OF:  # the cause went away: if it comes back, that is news again
                    self._log_once.clear(key)
            # one info line per run, when its final state is delivered
            log.log(
                logging.INFO if item.terminal else logging.DEBUG,
                "delivered %s %s (seq %d)",
                name,
                item.state,
                item.seq,
                extra=about(run=item.pipeline_id),
            )
            return
        if result.outcome in ("retry", "not_compass"):
            if result.status == 429:
                self.bucket.rate_limited()
            delay = backoff_delay(item.attempts)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, BACKOFF_CAP_S))
            elif result.status == 429:
                delay = max(delay, RATE_LIMIT_WINDOW_S)  # the budget is per minute: let it pass
            self._hold_until = time.monotonic() + delay
            if result.outcome == "not_compass":
                log.warning(
                    "something other than %s answered the request for %s (%s); retrying in %.1fs",
                    title,
                    name,
                    result.detail,
                    delay,
                    extra=about(run=item.pipeline_id),
                )
            else:
                log.warning(
                    "%s did not take %s (%s); retrying in %.1fs",
                    title,
                    name,
                    result.status or result.detail,
                    delay,
                    extra=about(run=item.pipeline_id),
                )
            self._store.retry_later(
                item,
                int((now + delay) * 1000),
                f"{result.status}: {result.detail}",
                answer=self._answered(item, result),
            )
            return
        hook = self.on_missing_source
        if result.outcome == "not_found" and hook is not None and await hook(item, body):
            self._store.retry_later(
                item, int(now * 1000), "event source created", answer=self._answered(item, result)
            )
            return
        if result.outcome in ("unauthorized", "not_found"):
            reason = self.sink.pause_reason(result, body)
            self._set_paused(reason, _CAUSE_OF[result.outcome])
            self._log_once(
                result.outcome,
                logging.ERROR,
                "delivery paused, %d event(s) kept: %s",
                self._store.outbox_depth(),
                reason,
            )
            self._store.retry_later(
                item,
                int((now + AUTH_RECHECK_S) * 1000),
                f"{result.status}: {result.detail}",
                paused=True,
                answer=self._answered(item, result),
            )
            return
        log.error(
            "%s rejected %s %s (HTTP %s): %s; kept as a dead letter, not retried (see buildtail status)",
            title,
            name,
            item.state,
            result.status,
            result.detail,
            extra=about(run=item.pipeline_id),
        )
        self._store.dead_letter(item, body, result.status, result.detail, answer=self._answered(item, result))

    def _pause_not_compass(self, item: OutboxItem, result: SendResult, now: float) -> None:
        """Something other than Compass keeps answering: nothing is sent but one event every
        ``not_compass_recheck_s``, and the first 202 from Compass resumes delivery by itself."""
        recheck = self.not_compass_recheck_s
        # the reason names the answer, not the running count: it is stored only when it changes
        reason = (
            f"something other than {self.sink.title} answered {NOT_COMPASS_PAUSE_AFTER}+ requests in a row, "
            f"the last with {result.detail}; events are kept, re-checked every {recheck:g}s"
        )
        answer = result.answer.fields() if result.answer is not None else None
        self._set_paused(reason, "not_compass", answer)
        self._log_once(
            "not_compass",
            logging.ERROR,
            "delivery paused, %d event(s) kept: %s",
            self._store.outbox_depth(),
            reason,
        )
        self._store.retry_later(
            item,
            int((now + recheck) * 1000),
            f"{result.status}: {result.detail}",
            paused=True,
            answer=self._answered(item, result),
        )

    def _set_paused(
        self,
        reason: str | None,
        cause: PauseCause | None = None,
        answer: dict[str, str | int | None] | None = None,
    ) -> None:
        if reason == self.paused:
            return
        self.paused = reason
        self.pause_cause = cause if reason is not None else None
        if self.metrics is not None:
            self.metrics.sink_paused(self.sink.name, reason is not None)
        self._store.set_delivery_state(reason, sink=self.sink.name, cause=self.pause_cause, answer=answer)
