"""Metrics and health endpoints: a real MetricsServer on a free loopback port, real HTTP requests."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon import __version__
from daemon.config import parse_listen
from daemon.ops.metrics import Metrics, MetricsServer
from parsers.vocabulary import BUILD_STATES


@dataclass
class Probe:
    """The daemon's state as plain settable values."""

    depth: int = 0
    oldest_age: float = 0.0
    dead: int = 0
    tokens: float = 0.0
    limit: int = 100
    paced: float = 100.0
    paused: bool = False
    cause: str | None = None
    watch_count: int = 0
    health: tuple[bool, str] = (True, "")
    readiness: tuple[bool, str] = (True, "")

    def queue_depth(self) -> int:
        return self.depth

    def oldest_queued_age_seconds(self) -> float:
        return self.oldest_age

    def dead_letters(self) -> int:
        return self.dead

    def budget_tokens(self) -> float:
        return self.tokens

    def budget_limit(self) -> int:
        return self.limit

    def paced_rate_per_minute(self) -> float:
        return self.paced

    def delivery_paused(self) -> bool:
        return self.paused

    def delivery_pause_cause(self) -> str | None:
        return self.cause

    def watches(self) -> int:
        return self.watch_count

    def healthy(self) -> tuple[bool, str]:
        return self.health

    def ready(self) -> tuple[bool, str]:
        return self.readiness


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def server(metrics: Metrics, probe: Probe) -> AsyncIterator[MetricsServer]:
    srv = MetricsServer(metrics, probe, "127.0.0.1:0")
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        yield session


async def get(http: aiohttp.ClientSession, server: MetricsServer, path: str) -> tuple[int, str, str]:
    async with http.get(f"http://127.0.0.1:{server.port}{path}") as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_counts_what_the_daemon_reports(
    metrics: Metrics, probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    metrics.run_detected("IN_PROGRESS")
    metrics.run_detected("IN_PROGRESS")
    metrics.run_detected("SUCCESSFUL")
    metrics.event_sent("accepted", 202, 0.02)
    metrics.event_sent("accepted", 202, 0.04)
    metrics.event_sent("retry", 503, 1.5)
    metrics.event_sent("retry", None, 30.0)
    metrics.reconcile_scan("jenkins", 0.3)

    status, ctype, text = await get(http, server, "/metrics")

    assert status == 200
    assert ctype == CONTENT_TYPE_LATEST
    found = samples(text)
    assert value(found, "buildtail_runs_detected_total", kind="build", state="IN_PROGRESS") == 2
    assert value(found, "buildtail_runs_detected_total", kind="build", state="SUCCESSFUL") == 1
    assert value(found, "buildtail_events_sent_total", outcome="accepted", status="202") == 2
    assert value(found, "buildtail_events_sent_total", outcome="retry", status="503") == 1
    assert value(found, "buildtail_events_sent_total", outcome="retry", status="none") == 1
    assert value(found, "buildtail_send_duration_seconds_count") == 4
    assert value(found, "buildtail_send_duration_seconds_sum") == pytest.approx(31.56)
    assert value(found, "buildtail_send_duration_seconds_bucket", le="0.025") == 1
    assert value(found, "buildtail_send_duration_seconds_bucket", le="0.05") == 2
    assert value(found, "buildtail_send_duration_seconds_bucket", le="+Inf") == 4
    assert value(found, "buildtail_reconcile_scans_total", source="jenkins") == 1
    assert value(found, "buildtail_reconcile_duration_seconds_count", source="jenkins") == 1
    assert value(found, "buildtail_reconcile_duration_seconds_sum", source="jenkins") == pytest.approx(0.3)
    assert value(found, "buildtail_up") == 1
    assert value(found, "buildtail_build_info", version=__version__) == 1


def test_the_series_alerts_count_start_at_0() -> None:
    """rate() and increase() see an increment only between two samples: these exist before the first."""
    found = samples(generate_latest(Metrics().registry).decode())
    for state in BUILD_STATES:
        assert value(found, "buildtail_runs_detected_total", kind="build", state=state) == 0
    assert value(found, "buildtail_events_sent_total", outcome="accepted", status="202") == 0
    assert value(found, "buildtail_events_sent_total", outcome="retry", status="429") == 0


async def test_last_delivery_moves_only_on_accepted(metrics: Metrics) -> None:
    def last() -> float:
        return value(
            samples(generate_latest(metrics.registry).decode()), "buildtail_last_delivery_timestamp_seconds"
        )

    assert last() == 0
    metrics.event_sent("rejected", 400, 0.1)
    metrics.event_sent("unauthorized", 401, 0.1)
    assert last() == 0
    before = time.time()
    metrics.event_sent("accepted", 202, 0.1)
    assert before <= last() <= before + 5


async def test_gauges_follow_the_probe_at_scrape_time(
    probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    names = {
        "buildtail_queue_depth": 0.0,
        "buildtail_queue_oldest_age_seconds": 0.0,
        "buildtail_dead_letters": 0.0,
        "buildtail_rate_budget_tokens": 0.0,
        "buildtail_rate_budget_limit_per_minute": 100.0,
        "buildtail_rate_limit_current_per_minute": 100.0,
        "buildtail_delivery_paused": 0.0,
        "buildtail_watches": 0.0,
    }
    found = samples((await get(http, server, "/metrics"))[2])
    assert {n: value(found, n) for n in names} == names

    probe.depth, probe.oldest_age, probe.dead = 7, 42.5, 3
    probe.tokens, probe.limit, probe.watch_count = 2.25, 60, 118
    probe.paced, probe.paused = 45.0, True
    found = samples((await get(http, server, "/metrics"))[2])
    assert {n: value(found, n) for n in names} == {
        "buildtail_queue_depth": 7,
        "buildtail_queue_oldest_age_seconds": 42.5,
        "buildtail_dead_letters": 3,
        "buildtail_rate_budget_tokens": 2.25,
        "buildtail_rate_budget_limit_per_minute": 60,
        "buildtail_rate_limit_current_per_minute": 45,
        "buildtail_delivery_paused": 1,
        "buildtail_watches": 118,
    }


async def test_delivery_paused_goes_back_to_0_when_delivery_resumes(
    probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    seen: list[float] = []
    for paused in (False, True, True, False):
        probe.paused = paused
        seen.append(value(samples((await get(http, server, "/metrics"))[2]), "buildtail_delivery_paused"))
    assert seen == [0, 1, 1, 0]


async def test_the_cause_of_a_pause_is_one_of_three_bounded_series(
    probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    """A pause because something other than Compass answers (a portal, a proxy) is told apart from
    refused credentials and a missing event source; the label has these three values and no other."""
    seen: list[dict[str, float]] = []
    for cause in (None, "not_compass", "credentials", None):
        probe.paused, probe.cause = cause is not None, cause
        found = samples((await get(http, server, "/metrics"))[2])
        reasons = {
            dict(labels)["reason"]: v
            for (name, labels), v in found.items()
            if name == "buildtail_delivery_paused_reason"
        }
        seen.append(reasons)
    off = {"credentials": 0.0, "event_source": 0.0, "not_compass": 0.0}
    assert seen == [off, {**off, "not_compass": 1.0}, {**off, "credentials": 1.0}, off]


async def test_the_paced_rate_is_its_own_reading_not_the_configured_limit(
    probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    """Pacing that adapts to 429s moves the current rate under an unchanged configured limit."""
    probe.limit, probe.paced = 100, 62.5
    found = samples((await get(http, server, "/metrics"))[2])
    assert value(found, "buildtail_rate_budget_limit_per_minute") == 100
    assert value(found, "buildtail_rate_limit_current_per_minute") == 62.5


async def test_a_probe_value_that_fails_leaves_the_rest_of_the_scrape(metrics: Metrics) -> None:
    class Broken(Probe):
        def queue_depth(self) -> int:
            raise RuntimeError("database is locked")

    metrics.bind(Broken(watch_count=5))
    found = samples(generate_latest(metrics.registry).decode())
    assert not any(name == "buildtail_queue_depth" for name, _ in found)
    assert value(found, "buildtail_watches") == 5
    assert value(found, "buildtail_up") == 1


async def test_healthz_and_readyz_follow_the_probe(
    probe: Probe, server: MetricsServer, http: aiohttp.ClientSession
) -> None:
    assert (await get(http, server, "/healthz"))[::2] == (200, "ok\n")
    assert (await get(http, server, "/readyz"))[::2] == (200, "ok\n")

    probe.health = (False, "the delivery task stopped")
    assert (await get(http, server, "/healthz"))[::2] == (503, "the delivery task stopped\n")
    assert (await get(http, server, "/readyz"))[::2] == (200, "ok\n")

    probe.health = (True, "")
    probe.readiness = (False, "oldest queued event is 1200s old")
    assert (await get(http, server, "/healthz"))[::2] == (200, "ok\n")
    assert (await get(http, server, "/readyz"))[::2] == (503, "oldest queued event is 1200s old\n")


async def test_a_check_that_raises_answers_503(server: MetricsServer, http: aiohttp.ClientSession) -> None:
    def boom() -> tuple[bool, str]:
        raise OSError("read-only file system")

    server.probe.ready = boom  # type: ignore[method-assign]
    status, _, text = await get(http, server, "/readyz")
    assert status == 503
    assert "read-only file system" in text


@pytest.mark.parametrize("path", ["/", "/metrics/", "/health", "/favicon.ico"])
async def test_unknown_paths_are_404(path: str, server: MetricsServer, http: aiohttp.ClientSession) -> None:
    assert (await get(http, server, path))[0] == 404


async def test_a_taken_port_is_a_clear_error(metrics: Metrics, probe: Probe, server: MetricsServer) -> None:
    other = MetricsServer(Metrics(), probe, f"127.0.0.1:{server.port}")
    with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{server.port} for metrics"):
        await other.start()
    await other.stop()


async def test_port_before_start_is_an_error(metrics: Metrics, probe: Probe) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = MetricsServer(metrics, probe, "127.0.0.1:0").port


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_serves_on_ipv6_loopback(metrics: Metrics, probe: Probe, http: aiohttp.ClientSession) -> None:
    srv = MetricsServer(metrics, probe, "[::1]:0")
    try:
        await srv.start()
    except OSError as exc:
        pytest.skip(f"::1 not available here: {exc}")
    try:
        async with http.get(f"http://[::1]:{srv.port}/healthz") as resp:
            assert resp.status == 200
    finally:
        await srv.stop()


def test_two_instances_do_not_collide() -> None:
    a, b = Metrics(), Metrics()
    a.run_detected("FAILED")
    a.bind(Probe(depth=4))
    b.bind(Probe(depth=9))
    found_a = samples(generate_latest(a.registry).decode())
    found_b = samples(generate_latest(b.registry).decode())
    assert value(found_a, "buildtail_runs_detected_total", kind="build", state="FAILED") == 1
    assert value(found_b, "buildtail_runs_detected_total", kind="build", state="FAILED") == 0
    assert value(found_a, "buildtail_queue_depth") == 4
    assert value(found_b, "buildtail_queue_depth") == 9


def test_nothing_goes_to_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    Metrics()
    assert REGISTRY.get_sample_value("buildtail_up") is None


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("127.3.2.1:80", ("127.3.2.1", 80)),
        ("[::1]:9464", ("::1", 9464)),
        ("[0:0:0:0:0:0:0:1]:9464", ("::1", 9464)),
        ("localhost:9464", ("localhost", 9464)),
        ("LocalHost:0", ("localhost", 0)),
        (" 127.0.0.1:65535 ", ("127.0.0.1", 65535)),
    ],
)
def test_parse_listen_accepts_loopback(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "[fe80::1]:9464", "example.com:9464", "[127.0.0.1]:9464"],
)
def test_parse_listen_refuses_anything_beyond_loopback(listen: str) -> None:
    with pytest.raises(ValueError, match="only loopback addresses"):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1", "expected host:port"),
        ("localhost:", "expected host:port"),
        ("::1:9464", "expected host:port"),
        (":9464", "expected host:port"),
        ("127.0.0.1:http", "expected host:port"),
        ("127.0.0.1:-1", "expected host:port"),
        ("127.0.0.1:65536", "out of range"),
        ("", "expected host:port"),
    ],
)
def test_parse_listen_reports_malformed_values(listen: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(listen)


def test_the_server_refuses_a_non_loopback_listen(metrics: Metrics, probe: Probe) -> None:
    with pytest.raises(ValueError, match="only loopback addresses"):
        MetricsServer(metrics, probe, "0.0.0.0:9464")
