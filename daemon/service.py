"""The daemon: startup -> main loop -> shutdown, in the manner of uvicorn's ``Server``.

Startup opens the state database, starts one runner per configured source (each discovers its files
and catches up on what happened while the daemon was down, or on the very first start only on what
is in progress) and starts delivery; then systemd hears READY. The main loop (``daemon.loop``) sleeps
until a hint arrives or a runner has work due, hands each hint to the runner whose watches produced
it, and lets every runner do what is due. Signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration,
SIGUSR2 (from ``buildtail backfill``) says events were queued by another process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from daemon.clock import now_ms
from daemon.config import ConfigError, JenkinsSourceSettings, Settings, SourceSettings, load_settings
from daemon.delivery.delivery import Delivery
from daemon.delivery.lock import DeliveryLock
from daemon.history import HistoryPolicy
from daemon.loop import Loop
from daemon.ops.health import Health
from daemon.ops.metrics import Metrics, MetricsServer
from daemon.ops.notify import Notifier
from daemon.recorder import Recorder
from daemon.recovery import open_store
from daemon.sinks import Transport
from daemon.sinks.registry import configured
from daemon.sources.files.runner import FileSourceRunner
from daemon.sources.jenkins.runner import JenkinsRunner
from daemon.sources.runner import Runner, RunnerContext
from daemon.sources.watch import Hint, InotifyReader
from daemon.store import Store

__all__ = ["Service"]

log = logging.getLogger("buildtail")

SHUTDOWN_GRACE_S = 10.0

_WAKE = Hint(None, "wake")  # not from inotify: only ends the wait for hints


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
        self.should_exit = asyncio.Event()
        self.hints: asyncio.Queue[Hint] = asyncio.Queue()
        self.store: Store | None = None
        self.recorder: Recorder | None = None
        self.delivery: Delivery | None = None
        self.runners: list[Runner] = []
        self.notifier = Notifier()
        self.metrics = Metrics()
        self.loop = Loop(self.hints, self.runners, self.metrics)
        self.health = Health(self)
        self.metrics_server: MetricsServer | None = None
        self.started = False
        self._transport = transport
        self._reload_requested = False
        self._watchdog_task: asyncio.Task[None] | None = None

    # --- signals -----------------------------------------------------------------------------------

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
        self.hints.put_nowait(_WAKE)

    def request_reload(self) -> None:
        self._reload_requested = True
        self.hints.put_nowait(_WAKE)

    def _events_queued_elsewhere(self) -> None:
        if self.delivery is not None:
            self.delivery.wake()

    # --- startup -----------------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        # a damaged database is rebuilt first, by what the configured sinks accepted
        store, recovered = open_store(s.state_dir, sinks=configured(s))
        self.store = store
        self.metrics.state_recovery(store.get_meta_json("recovered"), recovered_now=recovered is not None)
        history = HistoryPolicy.for_daemon(store, (c.name for c in s.sources), now_ms())
        history.note_scopes(store, s.sources, now_ms())
        self.delivery = Delivery(
            s,
            store,
            dry_run=self.dry_run,
            transport=self._transport,
            metrics=self.metrics,
            lock=DeliveryLock(s.state_dir),
        )
        self.recorder = Recorder(
            store, s, history=history, metrics=self.metrics, on_queued=self.delivery.wake
        )
        if s.metrics.listen:  # up during a long catch-up too: /healthz answers, /readyz says "starting"
            self.metrics_server = MetricsServer(self.metrics, self.health, s.metrics.listen)
            await self.metrics_server.start()
            host = s.metrics.listen.rsplit(":", 1)[0]
            log.info("metrics on http://%s:%d/metrics", host, self.metrics_server.port)
        await self._start_runners(s.sources)
        self.delivery.start()
        if self.notifier.watchdog_interval is not None:
            self._watchdog_task = asyncio.create_task(
                self.health.watchdog(self.notifier, self.notifier.watchdog_interval)
            )
        self.started = True
        dry = "" if self.delivery.for_real else " (dry run: events go to stdout)"
        log.info("ready: %s%s", self.summary(), dry)
        self.notifier.ready(self.summary())

    async def _start_runners(self, configs: tuple[SourceSettings, ...]) -> None:
        if self.reader is None and any(c.watch == "inotify" for c in configs):
            self.reader = InotifyReader(asyncio.get_running_loop(), self.hints)
            self.reader.start()
        assert self.store is not None and self.recorder is not None
        ctx = RunnerContext(
            self.settings.host,
            self.store,
            self.recorder,
            self.reader,
            self.metrics,
            # commits are read while a sink needs them (Jira's issue keys): the sinks as opened at
            # start, which a reload does not change (``registry.as_opened``), so neither does this
            changelog=self.recorder.settings.jira is not None,
        )
        for cfg in configs:
            runner: Runner
            if isinstance(cfg, JenkinsSourceSettings):
                runner = JenkinsRunner(cfg, ctx)
            else:
                runner = FileSourceRunner(cfg, ctx)
            self.runners.append(runner)
            await runner.start(first_start=self.recorder.history.first_look(cfg.name))

    def summary(self) -> str:
        parts = [r.summary() for r in self.runners]
        jenkins = sum(1 for r in self.runners if isinstance(r, JenkinsRunner))
        files = sum(p.file_source for p in parts)
        return (
            f"{sum(p.jobs for p in parts)} job(s) in {jenkins} source(s)"
            f"{f', {files} file source(s)' if files else ''}, "
            f"{sum(p.in_progress for p in parts)} run(s) in progress, "
            f"{self.reader.count if self.reader else 0} watch(es)"
        )

    # --- the main loop -----------------------------------------------------------------------------

    @property
    def reader(self) -> InotifyReader | None:
        """The inotify reader the runners share; the loop restarts it if its thread ends."""
        return self.loop.reader

    @reader.setter
    def reader(self, reader: InotifyReader | None) -> None:
        self.loop.reader = reader

    async def main_loop(self) -> None:
        """``Loop`` turns until exit, a reload between a turn's wait and its dispatch."""
        while not self.should_exit.is_set():
            batch = await self.loop.wait()
            if self.should_exit.is_set():
                break
            if self._reload_requested:
                self._reload_requested = False
                await self.reload()
            await self.loop.run(batch)
            assert self.delivery is not None
            if (exc := self.delivery.failure()) is not None:
                log.critical("the delivery loop stopped: %r", exc)
                raise RuntimeError("delivery loop stopped") from exc

    # --- shutdown and reload -----------------------------------------------------------------------

    async def shutdown(self) -> None:
        self.notifier.stopping()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            await asyncio.gather(self._watchdog_task, return_exceptions=True)
        for runner in self.runners:
            await runner.close()
        if self.reader is not None:
            await asyncio.to_thread(self.reader.stop)
        if self.delivery is not None:
            await self.delivery.stop(SHUTDOWN_GRACE_S)
            await self.delivery.close()
        if self.store is not None:
            self.store.record_stop("daemon")
            self.store.close()
        log.info("stopped; state saved")

    async def reload(self) -> None:
        """SIGHUP: read the configuration again; queued events and run state are kept as they are.

        A source whose settings changed gets a new runner (the old one's watches and open files are
        released first); the others keep theirs, with what they are tracking.
        """
        if self.config_path is None:
            return
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path)
        except ConfigError as exc:
            log.error("configuration not reloaded, the old one stays in force:\n%s", "\n".join(exc.errors))
            self.notifier.ready(self.summary())
            return
        old, self.settings = self.settings, new
        assert self.delivery is not None and self.recorder is not None and self.store is not None
        kept = [c for c in new.sources if c in old.sources] if new.host == old.host else []
        added = tuple(c for c in new.sources if c not in kept)
        # the rules' change is recorded before any run is judged by the new rules
        self.recorder.history.add_sources(self.store, (c.name for c in added), now_ms())
        self.recorder.history.note_scopes(self.store, new.sources, now_ms())
        await self.delivery.reconfigure(new)
        self.recorder.settings = new
        for runner in [r for r in self.runners if r.cfg not in kept]:
            self.runners.remove(runner)
            await runner.close()
        await self._start_runners(added)
        self.delivery.resume()
        log.info("configuration reloaded from %s", self.config_path)
        self.notifier.ready(self.summary())
