"""``buildtail backfill``: history sent oldest first, paced, resumable, never twice, beside the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tests.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
HOUR_MS = 3_600_000


def _pid(event: dict[str, Any]) -> str:
    return str(event["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"])


def _history(home: JenkinsHome) -> list[str]:
    """Six finished runs over the last five days and one from ten days ago."""
    now = int(time.time() * 1000)
    job = home.job("app")
    other = home.job("team/lib", kind="pipeline")
    written = []
    for hours_ago, j in [(240, job), (100, job), (80, other), (50, job), (30, other), (10, job), (2, other)]:
        run = j.start(start_ms=now - hours_ago * HOUR_MS)
        run.finish("SUCCESS", duration_ms=60_000)
        written.append(f"{j.full_name}#{run.number}")
    return written


def _config(
    tmp: Path, home: JenkinsHome, compass: FakeCompass, limit: int = 120, burst: int = 2
) -> dict[str, Any]:
    cfg = make_config(tmp, home, compass)
    cfg["compass"]["rate_limit_per_minute"] = limit
    cfg["compass"]["burst"] = burst
    return cfg


def _command(daemon: Daemon, *args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", "backfill", "--config", str(daemon.config_path), *args]


def _backfill(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    return subprocess.run(
        _command(daemon, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _start_backfill(daemon: Daemon, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    with open(log, "wb") as fh:
        return subprocess.Popen(_command(daemon, *args), cwd=REPO, env=env, stdout=fh, stderr=fh)


def _first_start(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.stop() == 0


def test_backfill_sends_history_oldest_first_once_and_paced(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass), start=False)
    _first_start(daemon)
    assert compass.events == [], "the first start sends no history"
    dry = _backfill(daemon, "--since", "5d", "--dry-run")
    out = dry.stderr
    assert dry.returncode == 0, out
    assert "6 finished run(s)" in out and "at 120 per minute" in out
    assert compass.events == [], "a dry run sends nothing"
    proc = _backfill(daemon, "--since", "5d")
    err = proc.stderr
    assert proc.returncode == 0, err
    assert "daemon is not running" in err and "Done: 6 event(s)" in err
    assert [_pid(e) for e in compass.events] == written[1:], "oldest first, nothing older than --since"
    times = [r.at for r in compass.requests]
    assert times[-1] - times[0] >= (6 - 2) / 2 - 0.2, "paced by the budget (2 per second after a burst of 2)"
    again = _backfill(daemon, "--since", "30d")
    assert again.returncode == 0
    assert [_pid(e) for e in compass.events] == [*written[1:], written[0]], (
        "a second backfill adds only the rest"
    )
    assert TOKEN not in err


def test_interrupted_backfill_resumes_without_duplicates(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass, limit=61, burst=1), start=False)  # 1 per second
    _first_start(daemon)
    proc = _start_backfill(daemon, tmp_path / "backfill.log", "--since", "30d")
    compass.wait_for(lambda events: len(events) >= 2, timeout=20)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) != 0
    partial = len(compass.events)
    assert partial < len(written)
    resumed = _backfill(daemon, "--since", "30d")
    assert resumed.returncode == 0
    pids = [_pid(e) for e in compass.events]
    assert sorted(set(pids)) == sorted(written)
    assert len(pids) - len(set(pids)) <= 1, (
        "at most the one event in flight at the interruption is sent again"
    )


def test_backfill_beside_the_running_daemon_never_sends_twice_and_live_builds_go_first(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    written = _history(home)
    daemon = daemon_factory(_config(tmp_path, home, compass, limit=61, burst=1))
    log = tmp_path / "backfill.log"
    proc = _start_backfill(daemon, log, "--since", "30d")
    compass.wait_for(lambda events: len(events) >= 1, timeout=20)
    live = home.job("live")
    live.start(start_ms=int(time.time() * 1000) - 1000).finish("FAILURE", duration_ms=10)
    assert proc.wait(timeout=60) == 0
    err = log.read_text()
    assert "daemon is running" in err
    wait_until(lambda: "live#1" in [_pid(e) for e in compass.events], what="the live build")
    pids = [_pid(e) for e in compass.events]
    assert sorted(p for p in pids if p != "live#1") == sorted(written)
    assert len(pids) == len(set(pids)), "nothing sent twice"
    assert pids.index("live#1") < len(pids) - 2, "the live build did not wait for the whole backfill"
    assert daemon.stop() == 0
