"""The daemon's lifecycle: startup -> main loop -> shutdown, in the manner of uvicorn's ``Server``.

Startup opens the store, discovers the jobs, catches up on what happened while the daemon was down
(or, on the very first start, only on runs in progress) and puts the watches in place. The main
loop turns file-system hints, polls and reconcile scans into run observations; each observation
goes through the event rules into the store; the sender drains the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from pathlib import Path

from daemon.config import ConfigError, Settings, load_settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.compass_admin import CompassGraphQL, GraphQLError, Target
from daemon.delivery.compass_admin import setup as setup_sources
from daemon.delivery.lock import DeliveryLock
from daemon.delivery.sender import Sender
from daemon.delivery.transport import CompassTransport, StdoutTransport, Transport
from daemon.events import RunFacts, next_update
from daemon.ops.metrics import Metrics, MetricsServer
from daemon.ops.notify import Notifier
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.jenkins.source import RUN_FILES, Gone, JenkinsSource, Retry, is_run_dir_name
from daemon.sources.watch import Accept, Hint, InotifyWatcher
from daemon.store import OutboxItem, Store

__all__ = ["Service"]

log = logging.getLogger("buildtail")

WATERMARK_SLACK_MS = 5000
STORE_RETRY_S = 5.0
CATCH_UP_BATCH = 200  # runs recorded per transaction while catching up
SHUTDOWN_GRACE_S = 10.0
CONTAINER_CHECK_S = 2.0  # how soon a new job is noticed (its container's mtime; no watch needed)
LOG_CLOSED_LOOK_S = 2.0  # a closed log without a final build.xml after this long is looked at again


_EXIT = Hint(None, "exit")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _mtime_ms(run_dir: Path) -> int:
    """The earlier of a run directory's and its builds directory's modification times."""
    times = []
    for path in (run_dir, run_dir.parent):
        try:
            times.append(path.stat().st_mtime_ns // 1_000_000)
        except OSError:
            continue
    return min(times, default=0)


def _host_port(listen: str, port: int) -> str:
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


def _bucket(settings: Settings, dry_run: bool) -> TokenBucket:
    if settings.compass is None or dry_run:
        return TokenBucket(0, 1)  # dry run: nothing to pace
    return TokenBucket(settings.compass.rate_limit_per_minute, settings.compass.burst)


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool = False,
        transport: Transport | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.dry_run = dry_run
        self.transport = transport
        self.should_exit = asyncio.Event()
        self.sources = [JenkinsSource(cfg, host=settings.host) for cfg in settings.jenkins_sources]
        self.open_dirs: dict[str, set[Path]] = {s.name: set() for s in self.sources}
        self.retries: dict[tuple[str, Path], float] = {}
        self.hints: asyncio.Queue[Hint] = asyncio.Queue()
        self.watcher: InotifyWatcher | None = None
        self.store: Store | None = None
        self.sender: Sender | None = None
        self.bucket = _bucket(settings, dry_run)
        self._sender_task: asyncio.Task[None] | None = None
        self._history_cutoff_ms = 0
        self._next_poll: dict[str, float] = {}
        self._next_reconcile: dict[str, float] = {}
        self._next_container_check = 0.0
        self._rediscover: set[str] = set()
        self._reload_requested = False
        self._store_trouble_logged = 0.0
        self._bad: set[tuple[str, Path]] = set()
        self._tries: dict[tuple[str, Path], int] = {}
        self.notifier = Notifier()
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.files: FileSourceRunner | None = None
        self.started = False
        self._watchdog_task: asyncio.Task[None] | None = None

    @property
    def sending_for_real(self) -> bool:
        return not self.dry_run and self.settings.compass is not None

    # --- lifecycle -----------------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_exit)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGUSR2, self._events_queued_elsewhere)
        try:
            await self.startup()
            await self.main_loop()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
                loop.remove_signal_handler(sig)

    def request_exit(self) -> None:
        self.should_exit.set()
        self.hints.put_nowait(_EXIT)

    def _events_queued_elsewhere(self) -> None:
        """SIGUSR2 from ``buildtail backfill``: it queued events in the shared database."""
        if self.sender is not None:
            self.sender.wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self.hints.put_nowait(_EXIT)  # wakes the main loop

    def _make_transport(self) -> Transport:
        if not self.sending_for_real:
            return StdoutTransport()
        assert self.settings.compass is not None
        return CompassTransport(self.settings.compass)

    async def startup(self) -> None:
        s = self.settings
        self.store = store = Store(s.state_dir)
        cutoff = store.get_meta_int("history_cutoff_ms")
        first_start = cutoff is None
        if cutoff is None:
            # Recorded before anything else: if this first start is cut short, the next start is
            # not "first" again and does not mistake what finished in between for history.
            cutoff = _now_ms()
            store.set_meta_int("history_cutoff_ms", cutoff)
        self._history_cutoff_ms = cutoff
        if s.metrics.listen:  # up during a long catch-up too: /healthz answers, /readyz says "starting"
            self.metrics_server = MetricsServer(self.metrics, self, s.metrics.listen)
            await self.metrics_server.start()
            log.info("metrics on http://%s/metrics", _host_port(s.metrics.listen, self.metrics_server.port))
        if self.transport is None:
            self.transport = self._make_transport()
        cloud_id = s.compass.cloud_id if s.compass else "dry-run"
        self.sender = Sender(
            store,
            self.transport,
            cloud_id,
            self.bucket,
            self._missing_source,
            DeliveryLock(s.state_dir),
            self.metrics,
        )
        if any(src.cfg.watch == "inotify" for src in self.sources):
            self.watcher = InotifyWatcher(asyncio.get_running_loop(), self.hints)
            self.watcher.start()
        for source in self.sources:
            await self._start_source(source, first_start=first_start)
        await self._start_file_sources()
        self._sender_task = asyncio.create_task(self.sender.run(), name="sender")
        if self.notifier.watchdog_interval is not None:
            self._watchdog_task = asyncio.create_task(self._watchdog(self.notifier.watchdog_interval))
        self.started = True
        log.info(
            "ready: %s%s", self.summary(), "" if self.sending_for_real else " (dry run: events go to stdout)"
        )
        self.notifier.ready(self.summary())

    def summary(self) -> str:
        files = f", {len(self.files.sources)} file source(s)" if self.files and self.files.sources else ""
        jobs = sum(len(src.layout.jobs) for src in self.sources)
        return (
            f"{jobs} job(s) in {len(self.sources)} source(s){files}, "
            f"{sum(len(v) for v in self.open_dirs.values())} run(s) in progress, "
            f"{self.watcher.count if self.watcher else 0} watch(es)"
        )

    def healthy(self) -> tuple[bool, str]:
        """Liveness: the loop runs (whoever asks runs on it), the watcher reads, delivery is alive."""
        if not self.started:
            return True, "starting"
        if self.watcher is not None and not self.watcher.alive:
            return False, "the inotify reader thread stopped"
        if self._sender_task is None or self._sender_task.done():
            return False, "the delivery task is not running"
        return True, "ok"

    async def _watchdog(self, interval: float) -> None:
        """WATCHDOG=1 from the event loop itself, and only while healthy: a stuck loop or a dead
        watcher thread stops the pings and systemd restarts the service."""
        last_status = ""
        while True:
            ok, reason = self.healthy()
            if ok:
                self.notifier.watchdog()
            else:
                log.error("unhealthy, not pinging the systemd watchdog: %s", reason)
            status = self._status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            await asyncio.sleep(interval)

    def _status_line(self) -> str:
        depth = self.store.outbox_depth() if self.store is not None else 0
        paused = f"; delivery paused: {self.sender.paused[:80]}" if self.sender and self.sender.paused else ""
        return f"{self.summary()}; {depth} event(s) queued{paused}"

    async def _start_file_sources(self) -> None:
        assert self.store is not None
        if self.watcher is None and any(c.watch == "inotify" for c in self.settings.file_sources):
            self.watcher = InotifyWatcher(asyncio.get_running_loop(), self.hints)
            self.watcher.start()
        self.files = FileSourceRunner(
            self.settings.file_sources, host=self.settings.host, store=self.store, record=self._record
        )
        self._sync_watches()
        await self.files.due()  # everything due now: catches up before READY
        self._sync_watches()

    async def _start_source(self, source: JenkinsSource, *, first_start: bool) -> None:
        await asyncio.to_thread(source.discover)
        self.open_dirs.setdefault(source.name, set())
        self._load_open_runs(source)
        self._sync_watches()  # watches first, then the scan: nothing falls between the two
        await self._catch_up(source, first_start=first_start)
        self._sync_watches()
        now = time.monotonic()
        self._next_poll[source.name] = now + source.cfg.poll_interval
        self._next_reconcile[source.name] = now + source.cfg.reconcile_interval

    async def main_loop(self) -> None:
        while not self.should_exit.is_set():
            if self.watcher is not None and self.hints.empty():
                self.watcher.flush_retired()  # nothing waiting: a moment for the bookkeeping
            timeout = self._next_deadline() - time.monotonic()
            batch: list[Hint] = []
            if timeout > 0:
                try:
                    batch.append(await asyncio.wait_for(self.hints.get(), timeout))
                except TimeoutError:
                    pass
            while not self.hints.empty():
                batch.append(self.hints.get_nowait())
            if self.should_exit.is_set():
                break
            if self._reload_requested:
                self._reload_requested = False
                await self.reload()
            await self._handle_hints(batch)
            await self._due_work()
            if self._sender_task is not None and self._sender_task.done():
                exc = self._sender_task.exception()
                log.critical("the delivery loop stopped: %r", exc)
                raise RuntimeError("delivery loop stopped") from exc

    async def shutdown(self) -> None:
        self.notifier.stopping()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            await asyncio.gather(self._watchdog_task, return_exceptions=True)
        if self.watcher is not None:
            await asyncio.to_thread(self.watcher.stop)
        if self.sender is not None and self._sender_task is not None:
            self.sender.stop()
            try:
                await asyncio.wait_for(asyncio.shield(self._sender_task), SHUTDOWN_GRACE_S)
            except TimeoutError:
                log.warning(
                    "a request to Compass was still in flight after %.0fs; it stays queued", SHUTDOWN_GRACE_S
                )
                self._sender_task.cancel()
            except Exception:  # already reported by the main loop
                pass
            await asyncio.gather(self._sender_task, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()
        if self.store is not None:
            self.store.close()
        log.info("stopped; state saved")

    async def reload(self) -> None:
        """SIGHUP: read the configuration again; queued events and run state are kept as they are."""
        if self.config_path is None:
            return
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path)
        except ConfigError as exc:
            log.error("configuration not reloaded, the old one stays in force:\n%s", "\n".join(exc.errors))
            self.notifier.ready(self.summary())
            return
        old = self.settings
        self.settings = new
        assert self.sender is not None
        if new.compass != old.compass:
            if (new.compass is None) != (old.compass is None):
                log.warning(
                    "compass section added or removed: restart buildtail to switch to or from a dry run"
                )
            else:
                old_transport = self.transport
                self.transport = self.sender.transport = self._make_transport()
                self.sender.cloud_id = new.compass.cloud_id if new.compass else "dry-run"
                if old_transport is not None:
                    await old_transport.close()
                fresh = _bucket(new, self.dry_run)
                if (fresh.limit, fresh.burst) != (self.bucket.limit, self.bucket.burst):
                    self.bucket = self.sender.bucket = fresh
        if new.file_sources != old.file_sources:
            await self._start_file_sources()
        if new.jenkins_sources != old.jenkins_sources:
            if self.watcher is None and any(c.watch == "inotify" for c in new.sources):
                self.watcher = InotifyWatcher(asyncio.get_running_loop(), self.hints)
                self.watcher.start()
            self.sources = [JenkinsSource(cfg, host=new.host) for cfg in new.jenkins_sources]
            self.retries = {k: v for k, v in self.retries.items() if k[0] in {c.name for c in new.sources}}
            for source in self.sources:
                self.open_dirs[source.name] = set()
                await self._start_source(source, first_start=False)
        self.sender.resume()
        log.info("configuration reloaded from %s", self.config_path)
        self.notifier.ready(self.summary())

    async def _missing_source(self, item: OutboxItem) -> bool:
        """404 from Compass: with auto_setup, create and attach the BUILD event source, then resend."""
        compass = self.settings.compass
        if compass is None or not compass.auto_setup:
            return False
        external = item.event["event"]["build"]["externalEventSourceId"]
        component = item.event.get("componentId")
        client = CompassGraphQL(compass, self.bucket)
        try:
            lines = await setup_sources(client, compass.cloud_id, [Target(external, component)])
            for line in lines:
                log.info("compass setup: %s", line)
            # only a change is a reason to resend at once; if everything was already in place the
            # 404 has another cause, and delivery pauses instead of spending the budget on 404s
            return any(line.startswith(("created", "attached")) for line in lines)
        except GraphQLError as exc:
            log.error("could not create the event source %r: %s", external, exc)
            return False
        finally:
            await client.close()

    # --- scheduling ----------------------------------------------------------------------------

    def _next_deadline(self) -> float:
        deadlines = list(self.retries.values()) + list(self._next_reconcile.values())
        if self.files is not None:
            deadlines.append(self.files.deadline())
        deadlines += [self._next_poll[s.name] for s in self.sources if s.cfg.watch == "polling"]
        if any(s.cfg.watch == "inotify" for s in self.sources):
            deadlines.append(self._next_container_check)
        if self._rediscover:
            deadlines.append(time.monotonic() + 0.2)
        return min(deadlines, default=time.monotonic() + 60)

    async def _due_work(self) -> None:
        if self.files is not None:
            await self.files.due()
        now = time.monotonic()
        due = [key for key, at in self.retries.items() if at <= now]
        by_source = {s.name: s for s in self.sources}
        for key in due:
            del self.retries[key]
        if due:
            self._process_many([(key, by_source[key[0]]) for key in due])
        if now >= self._next_container_check:
            self._next_container_check = now + CONTAINER_CHECK_S
            for source in self.sources:
                if source.cfg.watch == "inotify" and source.containers_changed():
                    self._rediscover.add(source.name)
        for source in self.sources:
            if source.name in self._rediscover:
                self._rediscover.discard(source.name)
                await self._refresh_jobs(source)
            if now >= self._next_reconcile[source.name]:
                self._next_reconcile[source.name] = now + source.cfg.reconcile_interval
                await self._reconcile(source)
            elif source.cfg.watch == "polling" and now >= self._next_poll[source.name]:
                self._next_poll[source.name] = now + source.cfg.poll_interval
                candidates, jobs_changed = await asyncio.to_thread(
                    source.poll, set(self.open_dirs[source.name])
                )
                if jobs_changed:
                    await self._refresh_jobs(source)
                if candidates:
                    self._process_many([((source.name, d), source) for d in dict.fromkeys(candidates)])

    # --- catching up ---------------------------------------------------------------------------

    async def _catch_up(self, source: JenkinsSource, *, first_start: bool) -> None:
        """Looks at every run that may have changed since the last complete scan and records the time."""
        assert self.store is not None
        started = _now_ms()
        key = f"watermark:{source.name}"
        watermark = self.store.get_meta_int(key)
        since = None if watermark is None else watermark - WATERMARK_SLACK_MS
        candidates = await asyncio.to_thread(
            source.scan, first_start=first_start, since_ms=since, open_dirs=set(self.open_dirs[source.name])
        )
        for i in range(0, len(candidates), CATCH_UP_BATCH):
            self._process_many([((source.name, d), source) for d in candidates[i : i + CATCH_UP_BATCH]])
        # Runs still pending (half-written, store trouble) must be found by the next scan: the mark
        # stays before their directories' times, so the mtime filters do not skip them.
        pending = [p for (name, p) in self.retries if name == source.name]
        self.store.set_meta_int(key, min([started, *(_mtime_ms(p) for p in pending)]))

    def _load_open_runs(self, source: JenkinsSource) -> None:
        assert self.store is not None
        for row in self.store.open_runs(source.name):
            run_dir = source.run_dir(row.job, row.number) if isinstance(row.number, int) else None
            if run_dir is not None:
                self.open_dirs[source.name].add(run_dir)

    async def _reconcile(self, source: JenkinsSource) -> None:
        started = time.monotonic()
        await asyncio.to_thread(source.discover)
        self._sync_watches()
        await self._catch_up(source, first_start=False)
        self._sync_watches()
        self.metrics.reconcile_scan(source.name, time.monotonic() - started)

    # --- what /metrics, /healthz and /readyz report (the metrics module's StateProbe) -------------

    def queue_depth(self) -> int:
        return self.store.outbox_depth() if self.store else 0

    def oldest_queued_age_seconds(self) -> float:
        ms = self.store.oldest_queued_ms() if self.store else None
        return 0.0 if ms is None else max(0.0, time.time() - ms / 1000)

    def dead_letters(self) -> int:
        return self.store.dead_letter_count() if self.store else 0

    def budget_tokens(self) -> float:
        return self.bucket.tokens

    def budget_limit(self) -> int:
        return self.bucket.limit

    def watches(self) -> int:
        return self.watcher.count if self.watcher else 0

    def ready(self) -> tuple[bool, str]:
        """Readiness: caught up, the state database writable, nothing queued for too long."""
        if not self.started:
            return False, "starting: catching up with the CI's files"
        if self._store_trouble_logged or not os.access(self.settings.state_dir, os.W_OK):
            return False, "the state database is not writable"
        age, limit = self.oldest_queued_age_seconds(), self.settings.metrics.ready_max_queue_age
        if age > limit:
            paused = f"; delivery paused: {self.sender.paused}" if self.sender and self.sender.paused else ""
            return False, f"the oldest queued event is {age:.0f}s old (limit {limit:.0f}s){paused}"
        return True, "ok"

    async def _refresh_jobs(self, source: JenkinsSource) -> None:
        """Jobs appeared, moved or were recreated: watch them, then look at their recent runs.

        Runs older than the last complete scan are left alone, so a renamed job does not send its
        history again under its new name.
        """
        assert self.store is not None
        before = set(source.layout.jobs)
        await asyncio.to_thread(source.discover)
        fresh = (set(source.layout.jobs) - before) | self._sync_watches()
        jobs = [source.layout.jobs[b] for b in fresh if b in source.layout.jobs]
        if not jobs:
            return
        watermark = self.store.get_meta_int(f"watermark:{source.name}")
        since = None if watermark is None else watermark - WATERMARK_SLACK_MS
        found = source.scan(first_start=False, since_ms=since, open_dirs=set(), jobs=jobs)
        for i in range(0, len(found), CATCH_UP_BATCH):
            self._process_many([((source.name, d), source) for d in found[i : i + CATCH_UP_BATCH]])
        self._sync_watches()

    # --- hints ---------------------------------------------------------------------------------

    async def _handle_hints(self, batch: list[Hint]) -> None:
        candidates: dict[tuple[str, Path], JenkinsSource] = {}
        for hint in batch:
            if hint is _EXIT:
                continue
            if hint.directory is None:
                log.warning("the inotify queue overflowed; scanning everything again")
                for source in self.sources:
                    self._next_reconcile[source.name] = 0.0
                continue
            if self.files is not None and self.files.hint(hint.directory):
                continue
            for source in self.sources:
                target = self._route(source, hint)
                if target is not None:
                    candidates[(source.name, target)] = source
        if candidates:
            self._process_many(list(candidates.items()))

    def _process_many(self, runs: list[tuple[tuple[str, Path], JenkinsSource]]) -> None:
        """Runs that changed together are all read first, then recorded in one transaction: one disk
        sync, not one each, and the write lock (which a backfill beside the daemon waits for) is
        never held while files are read."""
        assert self.store is not None
        seen = [(source, run_dir, self._look(source, run_dir)) for (_, run_dir), source in runs]
        try:
            with self.store.batch():
                for source, run_dir, facts in seen:
                    self._settle(source, run_dir, facts)
        except sqlite3.Error as exc:  # the commit failed: nothing of the batch is kept, look again
            log.error(
                "cannot write the state database (%s); %d run(s) retried in %.0fs",
                exc,
                len(runs),
                STORE_RETRY_S,
            )
            for (name, run_dir), _ in runs:
                self.retries[(name, run_dir)] = time.monotonic() + STORE_RETRY_S

    def _route(self, source: JenkinsSource, hint: Hint) -> Path | None:
        d = hint.directory
        assert d is not None
        layout = source.layout
        if d in layout.containers or d in layout.pending:
            self._rediscover.add(source.name)
            return None
        if d in layout.jobs:
            if not hint.name:
                self._rediscover.add(source.name)
                return None
            run_dir = d / hint.name
            if hint.gone:
                self._forget(source, run_dir)
                return None
            return run_dir if is_run_dir_name(hint.name) else None
        if d.parent in layout.jobs:
            if hint.gone and not hint.name:
                self._forget(source, d)
                return None
            if hint.name == "log" and hint.closed:
                # Jenkins closes the log just before it renames the final build.xml into place, which
                # brings the run here anyway; a look later covers a build.xml that never comes
                self.retries.setdefault((source.name, d), time.monotonic() + LOG_CLOSED_LOOK_S)
                return None
            if hint.name in RUN_FILES or not hint.name:
                return d
        return None

    # --- one run -------------------------------------------------------------------------------

    def _look(self, source: JenkinsSource, run_dir: Path) -> RunFacts | Retry | Gone | None:
        try:
            return source.observe(run_dir, known_open=run_dir in self.open_dirs[source.name])
        except Exception as exc:  # a bug must not stop the daemon; looked at again later
            log.exception("%s: could not read %s", source.name, run_dir)
            return Retry(60.0, f"{type(exc).__name__}: {exc}")

    def _settle(self, source: JenkinsSource, run_dir: Path, seen: RunFacts | Retry | Gone | None) -> None:
        """What a look at a run found: recorded, retried later, watched, or forgotten."""
        assert self.store is not None and self.sender is not None
        open_set = self.open_dirs[source.name]
        if not isinstance(seen, Retry):
            self._tries.pop((source.name, run_dir), None)
        if isinstance(seen, Gone):
            self._forget(source, run_dir)
            return
        if isinstance(seen, Retry):
            log.debug("%s: %s", source.name, seen.reason)
            # a record that stays unreadable (corrupt, not half-written) is looked at less and less often
            tries = self._tries[(source.name, run_dir)] = self._tries.get((source.name, run_dir), 0) + 1
            delay = min(seen.delay * 2 ** min(tries - 1, 10), 300.0)
            if tries == 10:
                log.warning("%s: %s unreadable after %d tries: %s", source.name, run_dir, tries, seen.reason)
            self.retries[(source.name, run_dir)] = time.monotonic() + delay
            if self.watcher is not None and source.cfg.watch == "inotify":
                self.watcher.add(run_dir, accept=_run_entry)
            return
        if seen is None:
            if run_dir.is_dir():
                self._watch_run(source, run_dir)  # a brand-new run directory: wait for its log
            return
        try:
            self._record(seen)
        except (ValueError, OverflowError, TypeError) as exc:  # data no rule foresaw: report, never crash
            if (source.name, run_dir) not in self._bad:
                self._bad.add((source.name, run_dir))
                log.error(
                    "%s: %s cannot be turned into an event (%s); looked at again later",
                    source.name,
                    run_dir,
                    exc,
                )
            self.retries[(source.name, run_dir)] = time.monotonic() + 300
            return
        except sqlite3.Error as exc:  # disk full, database locked: keep the run and look again later
            log.debug("%s: %s not recorded: %s", source.name, run_dir, exc)
            if time.monotonic() - self._store_trouble_logged > 300:
                self._store_trouble_logged = time.monotonic()
                log.error(
                    "cannot write the state database (%s); runs are kept and retried every %.0fs",
                    exc,
                    STORE_RETRY_S,
                )
            self.retries[(source.name, run_dir)] = time.monotonic() + STORE_RETRY_S
            return
        if seen.running:
            open_set.add(run_dir)
            self._watch_run(source, run_dir)
        else:
            self._forget(source, run_dir)

    def _record(self, facts: RunFacts, history_cutoff: bool = True) -> None:
        """Queues the run's next event, if any (store errors propagate: the caller retries)."""
        assert self.store is not None and self.sender is not None
        for _ in range(3):  # another process (backfill) may change the run between read and write
            prior = self.store.latest_run(facts.source, facts.job, facts.number)
            written = max(facts.end_ms or 0, facts.written_ms)
            if history_cutoff and prior is None and not facts.running and written < self._history_cutoff_ms:
                return  # finished, and its record written, before buildtail first started: history
            update = next_update(facts, prior, self.settings, taken=self.store.pipeline_id_taken)
            if update is None:
                return
            seq = self.store.record(update.run, update.event, prior=prior)
            if seq is not None:
                self.metrics.run_detected(update.run.state)
                self._store_trouble_logged = 0.0
                log.debug("queued %s %s (seq %d)", update.run.pipeline_id, update.run.state, seq)
                self.sender.wake()
                return

    def _watch_run(self, source: JenkinsSource, run_dir: Path) -> None:
        """Watches a run directory; a new watch missed what happened before it, so look once more."""
        if self.watcher is None or source.cfg.watch != "inotify":
            return
        if self.watcher.add(run_dir, accept=_run_entry):
            self.retries.setdefault((source.name, run_dir), time.monotonic())

    def _forget(self, source: JenkinsSource, run_dir: Path) -> None:
        self.open_dirs[source.name].discard(run_dir)
        self.retries.pop((source.name, run_dir), None)
        if self.watcher is not None:
            self.watcher.retire(run_dir)

    def _sync_watches(self) -> set[Path]:
        if self.watcher is None:
            return set()
        wanted: dict[Path, Accept | None] = {}
        for source in self.sources:
            if source.cfg.watch != "inotify":
                continue
            layout = source.layout
            wanted.update(dict.fromkeys(layout.pending))  # containers: a stat now and then instead
            wanted.update({b: _builds_entry for b in layout.jobs if b.is_dir()})
            wanted.update(dict.fromkeys(self.open_dirs[source.name], _run_entry))
            wanted.update({p: _run_entry for (name, p) in self.retries if name == source.name})
        appended = self.files.watched_dirs() if self.files is not None else set()
        return self.watcher.sync(wanted, appended)


def _builds_entry(name: str, closed: bool) -> bool:
    """In a job's builds directory only run directories come and go in ways that matter."""
    return is_run_dir_name(name)


def _run_entry(name: str, closed: bool) -> bool:
    """In a run directory: build.xml and the log; not the temporary files of Jenkins' atomic writes."""
    return name in RUN_FILES
