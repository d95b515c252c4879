"""What every source does with what it saw: facts -> the run's next update -> the store -> the sender.

The daemon's runners and ``buildtail backfill`` share it, so a run is recorded by the same rules
whoever finds it: its stored state is read first, the event rules decide the next event from it
(``events.next_update``), and the run's new state and its queued event are written in one
transaction. A run changed by the other process in between (the daemon and a backfill share the
database) is decided again rather than queued twice.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from daemon.config import Settings
from daemon.events import RunFacts, next_update
from daemon.ops.logs import LogOnce
from daemon.ops.metrics import Metrics
from daemon.store import STORE_RETRY_S, Store

__all__ = ["Recorder"]

log = logging.getLogger("buildtail")

STORE_TROUBLE_LOG_S = 300.0


class Recorder:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        history_cutoff_ms: int,
        metrics: Metrics | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings  # replaced on reload
        self.history_cutoff_ms = history_cutoff_ms
        self.metrics = metrics
        self.on_queued = on_queued
        self._trouble = LogOnce(log, every=STORE_TROUBLE_LOG_S)

    def record(
        self, facts: RunFacts, *, history_cutoff: bool = True, priority: int | None = None
    ) -> int | None:
        """Queues the run's next event, if any; returns its sequence number.

        With ``history_cutoff`` a run first seen finished whose files were written before buildtail's
        very first start is history, not news, and nothing is queued. Store errors propagate: the
        caller keeps the run and tries again later.
        """
        for _ in range(3):  # another process (backfill) may change the run between read and write
            prior = self.store.latest_run(facts.source, facts.job, facts.number)
            written = max(facts.end_ms or 0, facts.written_ms)
            if history_cutoff and prior is None and not facts.running and written < self.history_cutoff_ms:
                return None
            update = next_update(facts, prior, self.settings, taken=self.store.pipeline_id_taken)
            if update is None:
                return None
            seq = self.store.record(update.run, update.event, prior=prior, priority=priority)
            if seq is not None:
                if self.metrics is not None:
                    self.metrics.run_detected(update.run.state, update.run.kind)
                self.store_ok()
                log.debug("queued %s %s (seq %d)", update.run.pipeline_id, update.run.state, seq)
                if self.on_queued is not None:
                    self.on_queued()
                return seq
        return None

    # --- the state database's health, as the sources meet it -------------------------------------

    def store_failed(self, exc: sqlite3.Error, what: str) -> None:
        """A write failed (disk full, database locked): said once every few minutes, not per attempt."""
        self._trouble(
            "store",
            logging.ERROR,
            "cannot write the state database (%s); %s, tried again every %.0fs",
            exc,
            what,
            STORE_RETRY_S,
        )

    def store_ok(self) -> None:
        self._trouble.clear("store")

    @property
    def store_writable(self) -> bool:
        """False from a failed write until the next one that succeeds."""
        return not self._trouble.active("store")
