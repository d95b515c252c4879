"""What every source does with what it saw: facts -> the run's next update -> the store -> the sender.

The daemon's runners and ``buildtail backfill`` share it, so a run is recorded by the same rules
whoever finds it: its stored state is read first, the event rules decide the next event from it
(``events.next_update``), and the run's new state and its queued event are written in one
transaction. A run changed by the other process in between (the daemon and a backfill share the
database) is decided again rather than queued twice. Which runs count at all is ``daemon.scope``'s
answer, what is history and kept out the ``HistoryPolicy``'s, both applied here, in that order, to
every run whoever reports it.

The recorder owns the transaction (``record_many``): the sources hand it their work, it commits it
as one, and only a COMMIT that succeeded says the state database is writable again, so a failure
that lasts is reported once, not once per attempt.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from daemon.config import Settings
from daemon.events import RunFacts, next_update, update_to_json
from daemon.history import HistoryPolicy
from daemon.ops.logs import LogOnce, about
from daemon.ops.metrics import Metrics
from daemon.scope import keeps_out
from daemon.sinks.jira.wants import NAME as JIRA
from daemon.sinks.jira.wants import annotate, carried_keys, keep_keys, note_deployment, run_keys
from daemon.sinks.registry import as_opened, queued_for
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
        history: HistoryPolicy,
        metrics: Metrics | None = None,
        on_queued: Callable[[], None] | None = None,
        only: tuple[str, ...] | None = None,
    ) -> None:
        """``only``: the sinks a run first found here may be queued for (``buildtail backfill --to``);
        None: all. A run already recorded is not history: its updates go to every sink that wants
        them, or a sink that has it in progress would never learn how it ended."""
        self.only = only
        self.store = store
        self._settings = settings  # replaced on reload
        self.history = history
        self.metrics = metrics
        self.on_queued = on_queued
        self._trouble = LogOnce(log, every=STORE_TROUBLE_LOG_S)

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, new: Settings) -> None:
        """A reload; the sinks updates are queued for stay those opened at start (``as_opened``)."""
        self._settings = as_opened(new, self._settings)

    def record(self, facts: RunFacts, *, arrived: bool = False, priority: int | None = None) -> int | None:
        """Queues the run's next event, if any; returns its sequence number.

        ``arrived``: the source saw the run appear after it started looking (see ``HistoryPolicy``).
        Called inside ``record_many``'s transaction (or as a transaction of its own); store errors
        propagate to it.
        """
        for _ in range(3):  # another process (backfill) may change the run between read and write
            prior = self.store.latest_run(facts.source, facts.job, facts.number)
            reason = keeps_out(self.settings, facts, prior)
            if reason is not None:
                log.debug(
                    "%s #%s not counted: %s",
                    facts.job,
                    facts.number,
                    reason,
                    extra=about(source=facts.source, run=f"{facts.job}#{facts.number}"),
                )
                return None
            if not self.history.admits(facts, prior, arrived=arrived):
                return None
            update = next_update(facts, prior, self.settings, taken=self.store.pipeline_id_taken)
            if update is None:
                return None
            carried = carried_keys(self.settings, update, self.store)
            sinks = queued_for(self.settings, update, self.store, carried)
            if self.only is not None and prior is None:  # a backfill's history: a run no asked-for
                sinks = tuple(name for name in sinks if name in self.only)  # sink wants waits for a
                if not sinks:  # later --to; a run already known goes on to every sink that has it
                    return None
            keys = run_keys(self.settings, update, self.store, carried) if JIRA in sinks else ()
            seq = self.store.record(
                update.run,
                annotate(update_to_json(update), carried, keys),
                prior=prior,
                priority=priority,
                sinks=sinks,
            )
            if seq is not None:
                note_deployment(self.settings, update, self.store, carried)
                if JIRA in sinks:
                    keep_keys(self.store, update, keys)
                if self.metrics is not None:
                    self.metrics.run_detected(update.run.state, update.run.kind)
                log.debug(
                    "queued %s %s (seq %d)",
                    update.run.pipeline_id,
                    update.run.state,
                    seq,
                    extra=about(source=facts.source, run=update.run.pipeline_id),
                )
                if self.on_queued is not None:
                    self.on_queued()
                return seq
        return None

    def record_many(self, work: Callable[[], None], what: str) -> bool:
        """Runs ``work`` (its ``record`` calls and the source's checkpoints) as one transaction.

        Returns whether it was committed. A failure (disk full, database locked) rolls everything
        back and is reported once, with ``what`` the caller keeps for the next attempt; the state
        database counts as writable again only after a COMMIT that wrote something (an empty one
        succeeds on a full disk too, and proves nothing).
        """
        before = self.store.total_changes
        try:
            with self.store.batch():
                work()
        except sqlite3.Error as exc:
            self.store_failed(exc, what)
            return False
        if self.store.total_changes != before:
            self.store_ok()
        return True

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
