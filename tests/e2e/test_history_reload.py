"""The real daemon: a Jenkins home added by a reload sends no history, even the runs that finished
after the daemon's very first start; what runs and what finishes from then on is sent."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome


def _sent(compass: FakeCompass) -> set[tuple[str, str]]:
    out = set()
    for e in compass.events:
        props = e["event"]["build"]["buildProperties"]
        out.add((props["pipeline"]["pipelineId"], props["state"]))
    return out


def test_a_jenkins_home_added_on_reload_sends_no_history(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: Callable[..., Daemon]
) -> None:
    cfg = make_config(tmp_path, home, compass)
    daemon = daemon_factory(cfg)  # the very first start, with one home
    added = JenkinsHome(tmp_path / "jenkins-b")
    job = added.job("added-app")
    job.start().finish("SUCCESS")  # after the first start, before the reload: history of the new home
    job.start().log("still going")
    cfg["sources"].append(
        {"type": "jenkins", "name": "b", "home": str(added.root), "reconcile_interval": "2s"}
    )
    daemon.config_path.write_text(json.dumps(cfg))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.stderr, what="the reload")
    wait_until(lambda: any("added-app" in p for p, _ in _sent(compass)), what="the run in progress")
    job.start().finish("FAILURE")  # news
    wait_until(lambda: any(s == "FAILED" for _, s in _sent(compass)), what="the run after the reload")
    # the first reconcile scan looks at the added home's recent runs again (its watermark's slack
    # covers them): the policy, not the scan, keeps them out
    wait_until(lambda: _scans(daemon, "b") >= 1, what="a reconcile scan of the added home")
    wait_until(lambda: _delivered(compass, daemon), what="everything queued delivered")
    sent = _sent(compass)
    assert {("added-app#2", "IN_PROGRESS"), ("added-app#3", "FAILED")} <= sent
    assert not [p for p, _ in sent if p == "added-app#1"], "the added home's history was sent"


def _metrics(daemon: Daemon) -> str:
    match = re.search(r"metrics on http://(127\.0\.0\.1:\d+)/metrics", daemon.stderr)
    assert match is not None
    with urllib.request.urlopen(f"http://{match.group(1)}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def _scans(daemon: Daemon, source: str) -> float:
    found = re.search(
        rf'^buildtail_reconcile_scans_total{{source="{source}"}} (\S+)$', _metrics(daemon), re.M
    )
    return float(found.group(1)) if found else 0.0


def _delivered(compass: FakeCompass, daemon: Daemon) -> bool:
    found = re.search(r"^buildtail_queue_depth (\S+)$", _metrics(daemon), re.M)
    return found is not None and float(found.group(1)) == 0
