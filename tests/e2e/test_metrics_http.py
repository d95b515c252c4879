"""/metrics, /healthz and /readyz of the real daemon, over real HTTP."""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_and_health_endpoints(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    match = re.search(r"metrics on http://(127\.0\.0\.1:\d+)/metrics", daemon.stderr)
    assert match, daemon.stderr
    base = f"http://{match.group(1)}"
    assert _get(f"{base}/healthz") == (200, "ok\n")
    assert _get(f"{base}/readyz") == (200, "ok\n")
    run = job.start()
    compass.wait_for(lambda events: len(events) == 1)
    run.finish("FAILURE")
    compass.wait_for(lambda events: len(events) == 2)

    def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = _get(f"{base}/metrics")
        assert status == 200
        return _samples(text)

    wait_until(lambda: scraped().get(("buildtail_queue_depth", ())) == 0.0, what="an empty queue")
    m = scraped()
    assert m[("buildtail_runs_detected_total", (("kind", "build"), ("state", "IN_PROGRESS")))] == 1
    assert m[("buildtail_runs_detected_total", (("kind", "build"), ("state", "FAILED")))] == 1
    assert m[("buildtail_events_sent_total", (("outcome", "accepted"), ("status", "202")))] == 2
    assert m[("buildtail_send_duration_seconds_count", ())] == 2
    # the job's builds/ only: jobs/ is not watched, the finished run's watch is gone once idle
    wait_until(lambda: scraped().get(("buildtail_watches", ())) == 1.0, what="one watch")
    assert m[("buildtail_dead_letters", ())] == 0
    assert m[("buildtail_delivery_paused", ())] == 0
    # make_config's budget: the daemon paces itself to the configured limit
    assert m[("buildtail_rate_limit_current_per_minute", ())] == 6000
    assert abs(m[("buildtail_last_delivery_timestamp_seconds", ())] - time.time()) < 30
    assert _get(f"{base}/nothing-here")[0] == 404
    assert daemon.stop() == 0


def test_delivery_paused_follows_a_401_and_the_reload_that_fixes_it(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a-revoked-token\n")
    cfg = make_config(tmp_path, home, compass)
    del cfg["compass"]["api_token"]
    cfg["compass"]["api_token_file"] = str(token_file)
    daemon = daemon_factory(cfg)
    match = re.search(r"metrics on http://(127\.0\.0\.1:\d+)/metrics", daemon.stderr)
    assert match, daemon.stderr

    def paused() -> float | None:
        return _samples(_get(f"http://{match.group(1)}/metrics")[1]).get(("buildtail_delivery_paused", ()))

    assert paused() == 0
    home.job("app").start(start_ms=int(time.time() * 1000) - 1000).finish("SUCCESS", duration_ms=500)
    wait_until(lambda: paused() == 1, what="delivery_paused to show the 401")
    token_file.write_text(TOKEN + "\n")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    compass.wait_for(lambda events: len(events) == 1, timeout=10)
    wait_until(lambda: paused() == 0, what="delivery_paused to clear")
    assert daemon.stop() == 0
