"""Prometheus metrics and health endpoints, served from the daemon's own event loop.

Counters and histograms are updated where things happen (the service, the sender). Everything that
is a *level* (queue depth, budget, watches) is read from a ``StateProbe`` at scrape time instead, so
a gauge can never go stale because some code path forgot to update it. The registry is private to
each ``Metrics``: two instances (tests, a reload) never collide, and nothing a library puts into the
global registry leaks out.

The server listens on loopback only: the endpoints are unauthenticated, and buildtail must not open
a port to the network. A scraper on another host goes through a local agent or an SSH tunnel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from daemon import __version__
from daemon.config.types import parse_listen
from parsers.vocabulary import BUILD_STATES, DEPLOYMENT_STATES

__all__ = ["PAUSE_CAUSES", "Metrics", "MetricsServer", "StateProbe"]

log = logging.getLogger("buildtail.metrics")

# One request to Compass: a fast 202 takes a few ms, the transport gives up at its timeout (30 s).
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A reconcile scan walks the Jenkins home: milliseconds for a few jobs, minutes for a large one.
SCAN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class StateProbe(Protocol):
    def queue_depth(self) -> int: ...
    def oldest_queued_age_seconds(self) -> float: ...
    def dead_letters(self) -> int: ...
    def budget_tokens(self) -> float: ...
    def budget_limit(self) -> int: ...
    def paced_rate_per_minute(self) -> float: ...
    def delivery_paused(self) -> bool: ...
    def delivery_pause_cause(self) -> str | None: ...
    def watches(self) -> int: ...
    def healthy(self) -> tuple[bool, str]: ...
    def ready(self) -> tuple[bool, str]: ...


_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("buildtail_queue_depth", "Events waiting in the outbox.", "queue_depth"),
    (
        "buildtail_queue_oldest_age_seconds",
        "Age of the oldest queued event (0 when the queue is empty).",
        "oldest_queued_age_seconds",
    ),
    ("buildtail_dead_letters", "Events Compass rejected for good, kept for inspection.", "dead_letters"),
    ("buildtail_rate_budget_tokens", "Requests the rate budget would admit right now.", "budget_tokens"),
    (
        "buildtail_rate_budget_limit_per_minute",
        "Configured Compass requests per minute (0: unlimited).",
        "budget_limit",
    ),
    (
        "buildtail_rate_limit_current_per_minute",
        "Compass requests per minute the daemon paces itself to right now (0: unlimited).",
        "paced_rate_per_minute",
    ),
    (
        "buildtail_delivery_paused",
        "1 while delivery is paused: Compass refused the credentials (401, 403), lacks the event "
        "source (404), or something other than Compass answers (a proxy or captive portal).",
        "delivery_paused",
    ),
    ("buildtail_watches", "inotify watches in place.", "watches"),
)


# The causes of a paused delivery (the sender's PauseCause), each a series of
# buildtail_delivery_paused_reason: a fixed set, so the label's cardinality stays bounded.
PAUSE_CAUSES = ("credentials", "event_source", "not_compass")
_PAUSE_REASON = (
    "buildtail_delivery_paused_reason",
    "1 for the cause of a paused delivery (credentials: 401/403; event_source: 404; not_compass: a "
    "proxy's page, a captive portal or a redirect answered instead of Compass), 0 for the others.",
)


class _ProbeCollector:
    """Reads the probe on every scrape; a value that cannot be read is left out, not the whole scrape."""

    def __init__(self) -> None:
        self.probe: StateProbe | None = None

    def describe(self) -> Iterable[Metric]:
        # Lets the registry see these names (and refuse duplicates) before a probe is bound.
        return [GaugeMetricFamily(name, doc) for name, doc, _ in _GAUGES] + [
            GaugeMetricFamily(*_PAUSE_REASON, labels=["reason"])
        ]

    def collect(self) -> Iterable[Metric]:
        probe = self.probe
        if probe is None:
            return
        for name, doc, attr in _GAUGES:
            try:
                value = float(getattr(probe, attr)())
            except Exception as exc:  # e.g. the state database is locked: report the rest anyway
                log.debug("metric %s not available: %r", name, exc)
                continue
            yield GaugeMetricFamily(name, doc, value=value)
        try:
            cause = probe.delivery_pause_cause()
        except Exception as exc:
            log.debug("metric %s not available: %r", _PAUSE_REASON[0], exc)
            return
        family = GaugeMetricFamily(*_PAUSE_REASON, labels=["reason"])
        for reason in PAUSE_CAUSES:
            family.add_metric([reason], 1.0 if cause == reason else 0.0)
        yield family


class Metrics:
    """All of buildtail's Prometheus metrics in their own CollectorRegistry (never the global one, so
    tests and several instances do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._runs = Counter(
            "buildtail_runs_detected",
            "Events queued for runs, by kind (build or deployment) and Compass state.",
            ["kind", "state"],
            registry=r,
        )
        self._sent = Counter(
            "buildtail_events_sent",
            "Requests to Compass, by outcome and HTTP status.",
            ["outcome", "status"],
            registry=r,
        )
        # The series the alerts count exist at 0 from the start: rate() and increase() cannot see a
        # series' first increment, so one born at 1 would hide the first run after a restart, the
        # first accepted event, or the first 429.
        for state in BUILD_STATES:
            self._runs.labels("build", state)
        for state in DEPLOYMENT_STATES:
            self._runs.labels("deployment", state)
        self._sent.labels("accepted", "202")
        self._sent.labels("retry", "429")
        self._sink_sent = Counter(
            "buildtail_sink_requests",
            "Answers per queued update sent, by sink (compass, jira), outcome and HTTP status.",
            ["sink", "outcome", "status"],
            registry=r,
        )
        self._sink_children: dict[tuple[str, str, int | None], Counter] = {}
        self._sink_last_delivery = Gauge(
            "buildtail_sink_last_delivery_timestamp_seconds",
            "Unix time of the last update the sink accepted (0: none since start).",
            ["sink"],
            registry=r,
        )
        self._sink_paused = Gauge(
            "buildtail_sink_delivery_paused", "1 while the sink's delivery is paused.", ["sink"], registry=r
        )
        self._send_seconds = Histogram(
            "buildtail_send_duration_seconds",
            "Duration of one request to Compass.",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self._last_delivery = Gauge(
            "buildtail_last_delivery_timestamp_seconds",
            "Unix time of the last event Compass accepted (0: none since start).",
            registry=r,
        )
        self._scans = Counter(
            "buildtail_reconcile_scans", "Periodic full scans of a source.", ["source"], registry=r
        )
        self._scan_seconds = Histogram(
            "buildtail_reconcile_duration_seconds",
            "Duration of one reconcile scan.",
            ["source"],
            buckets=SCAN_BUCKETS,
            registry=r,
        )
        self._inotify_overflows = Counter(
            "buildtail_inotify_overflows",
            "Times the kernel's inotify queue overflowed (each costs one rescan of every source).",
            registry=r,
        )
        self._inotify_reader_stops = Counter(
            "buildtail_inotify_reader_stops",
            "Times the inotify reader thread ended unasked and a new one was started.",
            registry=r,
        )
        Gauge("buildtail_up", "1 while the daemon runs.", registry=r).set(1)
        Gauge("buildtail_build_info", "The running version.", ["version"], registry=r).labels(
            __version__
        ).set(1)
        self._probe = _ProbeCollector()
        r.register(self._probe)

    def run_detected(self, state: str, kind: str = "build") -> None:
        self._runs.labels(kind, state).inc()

    def event_sent(self, outcome: str, status: int | None, seconds: float) -> None:
        """One request of the first sink (Compass when configured): the unlabelled series."""
        self._sent.labels(outcome, "none" if status is None else str(status)).inc()
        self._send_seconds.observe(seconds)
        if outcome == "accepted":
            self._last_delivery.set(time.time())

    def sink_answer(self, sink: str, outcome: str, status: int | None) -> None:
        """One queued update's answer from any sink (a batch's items counted one by one). The
        labelled children are kept: this runs for every event delivered."""
        key = (sink, outcome, status)
        child = self._sink_children.get(key)
        if child is None:
            child = self._sink_children[key] = self._sink_sent.labels(
                sink, outcome, "none" if status is None else str(status)
            )
        child.inc()
        if outcome == "accepted":
            self._sink_last_delivery.labels(sink).set(time.time())

    def sink_opened(self, sink: str) -> None:
        """The sink's series exist at 0 from the start (see the unlabelled ones above)."""
        self._sink_sent.labels(sink, "accepted", "202")
        self._sink_sent.labels(sink, "retry", "429")
        self._sink_last_delivery.labels(sink).set(0)
        self._sink_paused.labels(sink).set(0)

    def sink_paused(self, sink: str, paused: bool) -> None:
        self._sink_paused.labels(sink).set(1 if paused else 0)

    def inotify_overflow(self) -> None:
        self._inotify_overflows.inc()

    def inotify_reader_stopped(self) -> None:
        self._inotify_reader_stops.inc()

    def reconcile_scan(self, source: str, seconds: float) -> None:
        self._scans.labels(source).inc()
        self._scan_seconds.labels(source).observe(seconds)

    def state_recovery(self, record: object, *, recovered_now: bool) -> None:
        """The state database's last recovery (``meta.recovered``, by this process or by ``buildtail
        state recover``): a counter of this process's recoveries, a gauge of the last one's time."""
        recoveries = Counter(
            "buildtail_state_recoveries",
            "Damaged state databases this process set aside and rebuilt at its start.",
            registry=self.registry,
        )
        last = Gauge(
            "buildtail_state_last_recovery_timestamp_seconds",
            "Unix time the state database was last rebuilt from a damaged one (0: never).",
            registry=self.registry,
        )
        if recovered_now:
            recoveries.inc()
        if isinstance(record, dict) and isinstance(record.get("at_ms"), int):
            last.set(record["at_ms"] / 1000)

    def bind(self, probe: StateProbe) -> None:
        self._probe.probe = probe


class MetricsServer:
    """aiohttp.web app on the event loop (no extra thread): GET /metrics, /healthz and /readyz.

    On the loop rather than in prometheus_client's own thread so that /healthz answering at all
    shows the loop is responsive, and so the probe reads the daemon's state without locking.
    """

    def __init__(self, metrics: Metrics, probe: StateProbe, listen: str) -> None:
        self.metrics = metrics
        self.probe = probe
        self.listen = listen
        self.host, self._port = parse_listen(listen)
        metrics.bind(probe)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the metrics server is not started")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)  # a scrape every few seconds is not worth a log line
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno,
                f"cannot listen on {self.listen} for metrics: {exc.strerror or exc} "
                "(another buildtail, or another exporter, may hold the port; change metrics.listen)",
            ) from exc
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return self._check(self.probe.healthy, "health")

    async def _readyz(self, request: web.Request) -> web.Response:
        return self._check(self.probe.ready, "readiness")

    @staticmethod
    def _check(check: Callable[[], tuple[bool, str]], what: str) -> web.Response:
        try:
            ok, reason = check()
        except Exception as exc:  # a failing check is itself the answer, not a 500
            ok, reason = False, f"{what} check failed: {exc!r}"
        if ok:  # "ok", or "ok; " and what is worth knowing (a further sink's pause)
            return web.Response(text=f"{reason.rstrip() if reason.startswith('ok;') else 'ok'}\n")
        return web.Response(status=503, text=f"{reason.rstrip()}\n")
