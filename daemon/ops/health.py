"""Liveness, readiness and the systemd watchdog: what /healthz, /readyz and ``WATCHDOG=1`` report.

Liveness means the parts that can die on their own are alive: the inotify reader thread and the
delivery task (the loop itself is alive if anyone gets an answer, since every check runs on it).
Readiness adds what an operator waits for: caught up with the CI's files, a writable state
database, and nothing queued for longer than ``metrics.ready_max_queue_age``. The same object is the
metrics' ``StateProbe``, so a gauge is read from the daemon's state at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Protocol

from daemon.config import Settings
from daemon.ops.notify import Notifier

__all__ = ["BudgetView", "DeliveryView", "Health", "ReaderView", "RecorderView", "ServiceView", "StoreView"]

log = logging.getLogger("buildtail")


# What health reads of each part, and nothing more: health depends on these few names, not on the
# recorder, the watcher or delivery themselves (which sit in other rooms of the house).


class StoreView(Protocol):
    def outbox_depth(self) -> int: ...
    def oldest_queued_ms(self, skip_sinks: tuple[str, ...] = ()) -> int | None: ...
    def dead_letter_count(self) -> int: ...


class RecorderView(Protocol):
    @property
    def store_writable(self) -> bool: ...


class BudgetView(Protocol):
    @property
    def tokens(self) -> float: ...
    @property
    def limit(self) -> int: ...
    @property
    def paced(self) -> float: ...


class DeliveryView(Protocol):
    @property
    def alive(self) -> bool: ...
    @property
    def paused(self) -> str | None: ...
    @property
    def pause_cause(self) -> str | None: ...
    @property
    def bucket(self) -> BudgetView: ...
    def held_sinks(self) -> list[tuple[str, str, str]]: ...


class ReaderView(Protocol):
    @property
    def alive(self) -> bool: ...
    @property
    def count(self) -> int: ...


class ServiceView(Protocol):
    """The parts of the running service that health is read from (None until started)."""

    @property
    def started(self) -> bool: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> StoreView | None: ...
    @property
    def recorder(self) -> RecorderView | None: ...
    @property
    def delivery(self) -> DeliveryView | None: ...
    @property
    def reader(self) -> ReaderView | None: ...
    def summary(self) -> str: ...


class Health:
    def __init__(self, service: ServiceView) -> None:
        self.service = service

    def healthy(self) -> tuple[bool, str]:
        s = self.service
        if not s.started:
            return True, "starting"
        if s.reader is not None and not s.reader.alive:
            return False, "the inotify reader thread stopped"
        if s.delivery is None or not s.delivery.alive:
            return False, "the delivery task is not running"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        s = self.service
        if not s.started:
            return False, "starting: catching up with the CI's files"
        writable = s.recorder is None or s.recorder.store_writable
        if not writable or not os.access(s.settings.state_dir, os.W_OK):
            return False, "the state database is not writable"
        # a further sink (Jira) held by its credentials is reported, not a reason to be unready:
        # the first sink's events still flow; the first sink's own pause counts as before
        held = s.delivery.held_sinks() if s.delivery else []
        ms = s.store.oldest_queued_ms(tuple(name for name, _, _ in held)) if s.store else None
        age = 0.0 if ms is None else max(0.0, time.time() - ms / 1000)
        limit = s.settings.metrics.ready_max_queue_age
        if age > limit:
            paused = f"; delivery paused: {s.delivery.paused}" if s.delivery and s.delivery.paused else ""
            return False, f"the oldest queued event is {age:.0f}s old (limit {limit:.0f}s){paused}"
        if held:
            return True, "ok; " + "; ".join(f"{title} delivery paused: {why}" for _, title, why in held)
        return True, "ok"

    def status_line(self) -> str:
        """systemd's STATUS=: what runs, and what waits."""
        s = self.service
        depth = s.store.outbox_depth() if s.store is not None else 0
        paused = f"; delivery paused: {s.delivery.paused[:80]}" if s.delivery and s.delivery.paused else ""
        return f"{s.summary()}; {depth} event(s) queued{paused}"

    async def watchdog(self, notifier: Notifier, interval: float) -> None:
        """WATCHDOG=1 from the event loop itself, and only while healthy: a stuck loop or a dead
        watcher thread stops the pings and systemd restarts the service."""
        last_status = ""
        while True:
            ok, reason = self.healthy()
            if ok:
                notifier.watchdog()
            else:
                log.error("unhealthy, not pinging the systemd watchdog: %s", reason)
            status = self.status_line()
            if status != last_status:
                notifier.status(status)
                last_status = status
            await asyncio.sleep(interval)

    # --- the metrics' StateProbe -----------------------------------------------------------------

    def queue_depth(self) -> int:
        store = self.service.store
        return store.outbox_depth() if store else 0

    def oldest_queued_age_seconds(self) -> float:
        store = self.service.store
        ms = store.oldest_queued_ms() if store else None
        return 0.0 if ms is None else max(0.0, time.time() - ms / 1000)

    def dead_letters(self) -> int:
        store = self.service.store
        return store.dead_letter_count() if store else 0

    def budget_tokens(self) -> float:
        delivery = self.service.delivery
        return delivery.bucket.tokens if delivery else 0.0

    def budget_limit(self) -> int:
        delivery = self.service.delivery
        return delivery.bucket.limit if delivery else 0

    def paced_rate_per_minute(self) -> float:
        """The rate delivery keeps to now: the configured ceiling, or less while it shares the
        account with other hosts (it falls on 429s and grows back)."""
        delivery = self.service.delivery
        return float(delivery.bucket.paced) if delivery else 0.0

    def delivery_paused(self) -> bool:
        delivery = self.service.delivery
        return delivery is not None and delivery.paused is not None

    def delivery_pause_cause(self) -> str | None:
        delivery = self.service.delivery
        return None if delivery is None else delivery.pause_cause

    def watches(self) -> int:
        reader = self.service.reader
        return reader.count if reader else 0
