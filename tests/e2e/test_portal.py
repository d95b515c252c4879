"""A captive portal in front of Compass, with the real daemon and the real commands.

While the portal answers every POST with its sign-in page (HTTP 200, text/html), no build is
delivered and none is dropped: ``buildtail status`` shows them queued and delivery paused with the
page's title, the metrics show why, and once the portal lets requests through to the fake Compass
the daemon resumes by itself and every build arrives exactly once. ``compass setup`` and ``doctor``
meeting the portal print one clear line and fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tests.portal import PORTAL_TITLE, Portal
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def portal(compass: FakeCompass) -> Iterator[Portal]:
    with Portal(compass.site_url) as p:
        yield p


def _behind(portal: Portal, cfg: dict[str, Any]) -> dict[str, Any]:
    cfg["compass"]["base_url"] = f"{portal.url}/gateway/api"
    return cfg


def _buildtail(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    env.pop("STATE_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _status(config: Path) -> dict[str, Any]:
    proc = _buildtail("status", "--json", config=config)
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    return report


def _paused_reason_metric(daemon: Daemon) -> dict[str, float]:
    match = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", daemon.stderr)
    assert match, daemon.stderr
    with urllib.request.urlopen(f"{match.group(1)}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.findall(r'^buildtail_delivery_paused_reason\{reason="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {reason: float(v) for reason, v in found}


def _finish(home: JenkinsHome, job: str) -> None:
    home.job(job).start(start_ms=int(time.time() * 1000) - 2000).finish("SUCCESS", duration_ms=500)


def test_builds_finished_behind_a_portal_all_arrive_once_it_lets_requests_through(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, portal: Portal, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(_behind(portal, make_config(tmp_path, home, compass)))
    before = [f"app{i}" for i in range(4)]
    for job in before:
        _finish(home, job)
    wait_until(lambda: "delivery paused" in daemon.stderr, timeout=20, what="the pause")
    during = [f"lib{i}" for i in range(3)]  # more builds finish while paused: kept as well
    for job in during:
        _finish(home, job)
    jobs = before + during

    def all_queued() -> bool:
        return bool(_status(daemon.config_path)["queue"]["depth"] == len(jobs))

    wait_until(all_queued, timeout=15, what="every build queued")
    report = _status(daemon.config_path)
    delivery = report["delivery"]
    assert delivery["state"] == "paused" and delivery["cause"] == "not_compass", delivery
    assert delivery["answer"] == {
        "status": 200,
        "content_type": "text/html",
        "title": PORTAL_TITLE,
        "location_host": None,
    }
    assert f"page titled '{PORTAL_TITLE}'" in delivery["reason"]
    assert "a proxy or captive portal may be in the way" in delivery["reason"]
    assert report["attention"] == ["paused"] and report["exit_code"] == 1
    assert report["last_delivery"] is None and report["dead_letters"]["count"] == 0
    assert _paused_reason_metric(daemon) == {"credentials": 0, "event_source": 0, "not_compass": 1}
    text = _buildtail("status", config=daemon.config_path).stdout
    assert "PAUSED since" in text and PORTAL_TITLE in text, text
    answered_by_portal = portal.answers["page"]
    assert compass.events == []

    portal.let_through()  # signed in: the portal now passes requests on to Compass
    compass.wait_for(lambda events: len(events) >= len(jobs), timeout=30)
    wait_until(lambda: _status(daemon.config_path)["delivery"]["state"] == "running", what="resumed")
    report = _status(daemon.config_path)
    assert report["queue"]["depth"] == 0 and report["exit_code"] == 0
    builds = compass.builds()
    arrived = {
        pid
        for pid, events in builds.items()
        if [e["event"]["build"]["buildProperties"]["state"] for e in events] == ["SUCCESSFUL"]
    }
    assert arrived == {f"{job}#1" for job in jobs}, builds
    assert len(compass.events) == len(jobs), "each build arrives exactly once"
    assert daemon.stderr.count("delivery paused") == 1, "one line for the pause, however many re-checks"
    assert _paused_reason_metric(daemon) == {"credentials": 0, "event_source": 0, "not_compass": 0}
    print(
        f"\n{len(jobs)} builds finished while the portal answered 200 ({answered_by_portal} requests "
        f"answered by its page); {len(arrived)} of {len(jobs)} arrived after it went away; "
        f"{len(jobs) - len(arrived)} dropped"
    )
    assert daemon.stop() == 0


@pytest.mark.parametrize("command", [("doctor",), ("compass", "setup")])
def test_doctor_and_setup_behind_a_portal_say_so_in_one_line(
    tmp_path: Path,
    home: JenkinsHome,
    compass: FakeCompass,
    portal: Portal,
    daemon_factory: DaemonFactory,
    command: tuple[str, ...],
) -> None:
    config = daemon_factory(_behind(portal, make_config(tmp_path, home, compass)), start=False).config_path
    proc = _buildtail(*command, config=config)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "JSONDecodeError" not in out and "ContentTypeError" not in out
    said = [line for line in out.splitlines() if "something other than Compass answered" in line]
    assert said, out
    for line in said:
        assert f"HTTP 200 text/html, page titled '{PORTAL_TITLE}'" in line
        assert line.endswith("a proxy or captive portal may be in the way")
    assert TOKEN not in out
    assert compass.graphql_requests == [] and compass.tenant_info_requests == 0
