"""The Jenkins pipeline for one home: hints, polls and scans -> looks at runs -> the recorder.

It decides when a run is looked at (a hint from its directory, a retry, a poll, a reconcile scan),
which directories are watched (each job's builds directory and each running build's directory,
never the history), and what a look found means: recorded, retried later, watched, or forgotten.
Reading the files is ``JenkinsSource``'s job; the event rules are the recorder's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from daemon.clock import now_ms
from daemon.config import JenkinsSourceSettings
from daemon.events import RunFacts
from daemon.ops.logs import LogOnce, about
from daemon.sources.jenkins.source import RUN_FILES, Gone, JenkinsSource, Retry, is_run_dir_name
from daemon.sources.runner import RunnerContext, Summary
from daemon.sources.watch import Accept, Hint
from daemon.store import STORE_RETRY_S

__all__ = ["JenkinsRunner"]

log = logging.getLogger("buildtail")

WATERMARK_SLACK_MS = 5000
CATCH_UP_BATCH = 200  # runs recorded per transaction while catching up
CONTAINER_CHECK_S = 2.0  # how soon a new job is noticed (its container's mtime; no watch needed)
LOG_CLOSED_LOOK_S = 2.0  # a closed log without a final build.xml after this long is looked at again
SWEEP_QUIET_S = 0.2  # a burst of hints is over when it has been quiet this long
SWEEP_WAIT_MAX_S = 1.0  # ... or this long after it began, whichever comes first
BAD_RUN_RETRY_S = 300.0
RETRY_CAP_S = 300.0

Look = RunFacts | Retry | Gone | None


@dataclass
class _Sweep:
    """The builds directories to look over once a burst of hints is over."""

    began: float  # time.monotonic() of the burst's first hint
    due: float
    since_ms: int  # runs whose directories changed since then are the burst's
    hinted: set[Path] = field(default_factory=set)  # run directories the burst's hints named


def _mtime_ms(run_dir: Path) -> int:
    """The earlier of a run directory's and its builds directory's modification times."""
    times = []
    for path in (run_dir, run_dir.parent):
        try:
            times.append(path.stat().st_mtime_ns // 1_000_000)
        except OSError:
            continue
    return min(times, default=0)


def _builds_entry(name: str, closed: bool) -> bool:
    """In a job's builds directory only run directories come and go in ways that matter."""
    return is_run_dir_name(name)


def _run_entry(name: str, closed: bool) -> bool:
    """In a run directory: build.xml and the log; not the temporary files of Jenkins' atomic writes."""
    return name in RUN_FILES


class JenkinsRunner:
    def __init__(self, cfg: JenkinsSourceSettings, ctx: RunnerContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.source = JenkinsSource(cfg, host=ctx.host, changelog=ctx.changelog)
        self.store = ctx.store
        self.recorder = ctx.recorder
        self.metrics = ctx.metrics
        inotify = cfg.watch == "inotify" and ctx.reader is not None
        self.watch = ctx.reader.watcher(self.name) if inotify and ctx.reader is not None else None
        self.open_dirs: set[Path] = set()  # runs in progress
        self.retries: dict[Path, float] = {}  # run directory -> when to look again
        self._tries: dict[Path, int] = {}
        self._claimed: dict[Path, None] = {}
        self._watched_runs: set[Path] = set()  # run directories under watch (running, or not yet readable)
        self._sweep: _Sweep | None = None  # the safety net after a burst of hints
        self._rediscover = False  # jobs appeared or went: discover again before anything else
        self._bad = LogOnce(log)
        self._next_poll = self._next_reconcile = float("inf")
        self._next_container_check = 0.0

    # --- the Runner protocol ---------------------------------------------------------------------

    async def start(self, *, first_start: bool) -> None:
        await asyncio.to_thread(self.source.discover)
        for row in self.store.open_runs(self.name):
            run_dir = self.source.run_dir(row.job, row.number) if isinstance(row.number, int) else None
            if run_dir is not None:
                self.open_dirs.add(run_dir)
        self._sync_watches()  # watches first, then the scan: nothing falls between the two
        await self._catch_up(first_start=first_start)
        self._sync_watches()
        now = time.monotonic()
        self._next_poll = now + self.cfg.poll_interval
        self._next_reconcile = now + self.cfg.reconcile_interval

    def deadline(self) -> float:
        deadlines = [*self.retries.values(), self._next_reconcile]
        if self.watch is None:
            if self.cfg.watch == "polling":
                deadlines.append(self._next_poll)
        else:
            deadlines.append(self._next_container_check)
        if self._sweep is not None:
            deadlines.append(self._sweep.due)
        if self._claimed or self._rediscover:
            deadlines.append(0.0)
        return min(deadlines)

    def claim(self, hint: Hint) -> None:
        d = hint.directory
        assert d is not None
        layout = self.source.layout
        if d in layout.containers or d in layout.pending:
            self._rediscover = True
            return
        if d in layout.jobs:
            if not hint.name:
                self._rediscover = True
            elif hint.gone:
                self._forget(d / hint.name)
            elif is_run_dir_name(hint.name):
                self._claimed[d / hint.name] = None
                self._sweep_later(d / hint.name)
            return
        if d.parent in layout.jobs:
            if hint.gone and not hint.name:
                self._forget(d)
            elif hint.name == "log" and hint.closed:
                # Jenkins closes the log just before it renames the final build.xml into place, which
                # brings the run here anyway; a look later covers a build.xml that never comes
                self.retries.setdefault(d, time.monotonic() + LOG_CLOSED_LOOK_S)
            elif hint.name in RUN_FILES or not hint.name:
                self._claimed[d] = None

    def overflow(self) -> None:
        self._next_reconcile = 0.0

    async def due(self) -> None:
        if self._claimed:
            claimed = list(self._claimed)
            self._claimed.clear()
            self._process_many(claimed)
        now = time.monotonic()
        due = [d for d, at in self.retries.items() if at <= now]
        for d in due:
            del self.retries[d]
        if due:
            self._process_many(due)
        if self._sweep is not None and self._sweep.due <= now:
            sweep, self._sweep = self._sweep, None
            missed = self.source.sweep(sweep.since_ms, sweep.hinted)
            if missed:
                log.debug(
                    "%s: %d run(s) appeared without a hint: %s",
                    self.name,
                    len(missed),
                    missed,
                    extra=about(source=self.name),
                )
                self._process_many(missed)
        if self.watch is not None and now >= self._next_container_check:
            self._next_container_check = now + CONTAINER_CHECK_S
            if self.source.containers_changed():
                self._rediscover = True
        if self._rediscover:
            self._rediscover = False
            await self._refresh_jobs()
        if now >= self._next_reconcile:
            self._next_reconcile = now + self.cfg.reconcile_interval
            await self._reconcile()
        elif self.cfg.watch == "polling" and now >= self._next_poll:
            self._next_poll = now + self.cfg.poll_interval
            candidates, jobs_changed = await asyncio.to_thread(self.source.poll, set(self.open_dirs))
            if jobs_changed:
                await self._refresh_jobs()
            if candidates:
                self._process_many(list(dict.fromkeys(candidates)))

    def wanted(self) -> tuple[dict[Path, Accept | None], set[Path]]:
        layout = self.source.layout
        wanted: dict[Path, Accept | None] = dict.fromkeys(layout.pending)  # containers: a stat instead
        wanted.update({b: _builds_entry for b in layout.jobs if b.is_dir()})
        wanted.update(dict.fromkeys(self.open_dirs, _run_entry))
        wanted.update(dict.fromkeys(self.retries, _run_entry))
        wanted.update(dict.fromkeys(self._watched_runs, _run_entry))
        return wanted, set()

    def summary(self) -> Summary:
        return Summary(jobs=len(self.source.layout.jobs), in_progress=len(self.open_dirs))

    async def close(self) -> None:
        if self.watch is not None:
            self.watch.close()

    # --- scans -----------------------------------------------------------------------------------

    async def _catch_up(self, *, first_start: bool) -> None:
        """Looks at every run that may have changed since the last complete scan and records the time."""
        started = now_ms()
        key = f"watermark:{self.name}"
        watermark = self.store.get_meta_int(key)
        since = None if watermark is None else watermark - WATERMARK_SLACK_MS
        candidates = await asyncio.to_thread(
            self.source.scan, first_start=first_start, since_ms=since, open_dirs=set(self.open_dirs)
        )
        self._process_batches(candidates)
        # Runs still pending (half-written, store trouble) must be found by the next scan: the mark
        # stays before their directories' times, so the mtime filters do not skip them.
        self.store.set_meta_int(key, min([started, *(_mtime_ms(p) for p in self.retries)]))

    async def _reconcile(self) -> None:
        started = time.monotonic()
        await asyncio.to_thread(self.source.discover)
        self._sync_watches()
        await self._catch_up(first_start=False)
        self._sync_watches()
        if self.metrics is not None:
            self.metrics.reconcile_scan(self.name, time.monotonic() - started)

    async def _refresh_jobs(self) -> None:
        """Jobs appeared, moved or were recreated: watch them, then look at their recent runs.

        Runs older than the last complete scan are left alone, so a renamed job does not send its
        history again under its new name.
        """
        before = set(self.source.layout.jobs)
        await asyncio.to_thread(self.source.discover)
        layout = self.source.layout
        fresh = (set(layout.jobs) - before) | self._sync_watches()
        jobs = [layout.jobs[b] for b in fresh if b in layout.jobs]
        if not jobs:
            return
        watermark = self.store.get_meta_int(f"watermark:{self.name}")
        since = None if watermark is None else watermark - WATERMARK_SLACK_MS
        self._process_batches(self.source.scan(first_start=False, since_ms=since, open_dirs=set(), jobs=jobs))
        self._sync_watches()

    def _sync_watches(self) -> set[Path]:
        if self.watch is None:
            return set()
        return self.watch.sync(*self.wanted())

    # --- looking at runs -------------------------------------------------------------------------

    def _process_batches(self, run_dirs: list[Path]) -> None:
        for i in range(0, len(run_dirs), CATCH_UP_BATCH):
            self._process_many(run_dirs[i : i + CATCH_UP_BATCH])

    def _process_many(self, run_dirs: list[Path]) -> None:
        """Runs that changed together are all read first, then recorded in one transaction: one disk
        sync, not one each, and the write lock (which a backfill beside the daemon waits for) is
        never held while files are read."""
        seen = [(run_dir, self._look(run_dir)) for run_dir in run_dirs]

        def settle_all() -> None:
            for run_dir, look in seen:
                self._settle(run_dir, look)

        # a failed commit keeps nothing of the batch: every run is looked at again
        if not self.recorder.record_many(settle_all, f"{len(run_dirs)} run(s) of {self.name} are kept"):
            for run_dir in run_dirs:
                self.retries[run_dir] = time.monotonic() + STORE_RETRY_S

    def _look(self, run_dir: Path) -> Look:
        try:
            return self.source.observe(run_dir, known_open=run_dir in self.open_dirs)
        except Exception as exc:  # a bug must not stop the daemon; looked at again later
            where = about(source=self.name, path=run_dir)
            log.exception("%s: could not read %s", self.name, run_dir, extra=where)
            return Retry(60.0, f"{type(exc).__name__}: {exc}")

    def _settle(self, run_dir: Path, seen: Look) -> None:
        """What a look at a run found: recorded, retried later, watched, or forgotten."""
        if not isinstance(seen, Retry):
            self._tries.pop(run_dir, None)
        if isinstance(seen, Gone):
            self._forget(run_dir)
            return
        if isinstance(seen, Retry):
            log.debug("%s: %s", self.name, seen.reason, extra=about(source=self.name, path=run_dir))
            # a record that stays unreadable (corrupt, not half-written) is looked at less and less often
            tries = self._tries[run_dir] = self._tries.get(run_dir, 0) + 1
            delay = min(seen.delay * 2 ** min(tries - 1, 10), RETRY_CAP_S)
            if tries == 10:
                log.warning(
                    "%s: %s unreadable after %d tries: %s",
                    self.name,
                    run_dir,
                    tries,
                    seen.reason,
                    extra=about(source=self.name, path=run_dir),
                )
            self.retries[run_dir] = time.monotonic() + delay
            if self._watch_run(run_dir):
                self._tries[run_dir] -= 1  # that second look is not a failed try
            return
        if seen is None:
            if run_dir.is_dir():
                self._watch_run(run_dir)  # a brand-new run directory: wait for its log
            return
        try:
            self.recorder.record(seen)
        except (ValueError, OverflowError, TypeError) as exc:  # data no rule foresaw: report, never crash
            self._bad(
                run_dir,
                logging.ERROR,
                "%s: %s cannot be turned into an event (%s); looked at again later",
                self.name,
                run_dir,
                exc,
                extra=about(source=self.name, path=run_dir),
            )
            self.retries[run_dir] = time.monotonic() + BAD_RUN_RETRY_S
            return
        if seen.running:
            self.open_dirs.add(run_dir)
            self._watch_run(run_dir)
        else:
            self._forget(run_dir)

    def _watch_run(self, run_dir: Path) -> bool:
        """Watches a run directory until the run is forgotten. A new watch missed what happened
        before it (Jenkins renames the final build.xml into place milliseconds after the log
        says Finished), so the run is looked at once more now, whatever later look was planned;
        returns whether the watch is new."""
        if self.watch is None:
            return False
        self._watched_runs.add(run_dir)
        if not self.watch.add(run_dir, accept=_run_entry):
            return False
        self.retries[run_dir] = min(self.retries.get(run_dir, float("inf")), time.monotonic())
        return True

    def _sweep_later(self, run_dir: Path) -> None:
        """Looks over the jobs' builds directories once this burst of hints is over (one ``stat``
        each, a listing where one changed): a run whose hint was lost, or that appeared next to one
        that had a hint, then costs milliseconds, not a reconcile scan's minutes."""
        now = time.monotonic()
        if self._sweep is None:
            self._sweep = _Sweep(now, now, now_ms() - WATERMARK_SLACK_MS)
        self._sweep.due = min(now + SWEEP_QUIET_S, self._sweep.began + SWEEP_WAIT_MAX_S)
        self._sweep.hinted.add(run_dir)
        self.source.note_run(run_dir)

    def _forget(self, run_dir: Path) -> None:
        self.open_dirs.discard(run_dir)
        self.source.forget(run_dir)
        self._watched_runs.discard(run_dir)
        self.retries.pop(run_dir, None)
        if self.watch is not None:
            self.watch.retire(run_dir)
