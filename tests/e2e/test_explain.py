"""``buildtail explain`` beside the real daemon process and the fake Compass: it answers while the
daemon holds the database, and it never writes to it (the database is the same, byte for byte and
mtime, after it ran on a stopped daemon's state)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
COMPONENT = "ari:cloud:compass:cloud-123:component/api"


def _explain(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COMPASS_API_TOKEN"}  # it needs no credentials
    return subprocess.run(
        [sys.executable, "-m", "daemon", "explain", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=30,
    )


def _report(config: Path, *args: str) -> dict[str, Any]:
    proc = _explain(config, *args, "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _files(state: Path) -> dict[str, tuple[str, int]]:
    """Every file of the state directory: its digest and mtime."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(state.iterdir())
        if p.is_file() and p.name != "delivery.lock"
    }


def test_explain_while_the_daemon_runs_and_it_never_writes(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["components"] = [{"match": "**", "component_id": COMPONENT}]
    daemon = daemon_factory(cfg)
    run = home.job("api").start(start_ms=int(time.time() * 1000) - 2000)
    run.finish("SUCCESS", duration_ms=500)
    compass.wait_for(lambda events: len(events) == 1)

    def answered() -> bool:
        runs = _report(daemon.config_path, f"api#{run.number}")["runs"]
        return any(a["outcome"] == "accepted" for a in runs[0]["events"]["answers"])

    wait_until(answered, timeout=30.0, what="the accepted answer, read while the daemon runs")
    assert daemon.alive()
    [seen] = _report(daemon.config_path, f"api#{run.number}")["runs"]
    [answer] = seen["events"]["answers"]
    assert (answer["status"], answer["component_id"], answer["state"]) == (202, COMPONENT, "SUCCESSFUL")
    assert all(m["counts"] for m in seen["metrics"])
    text = _explain(daemon.config_path, f"api#{run.number}")
    assert text.returncode == 0 and "build success rate: yes" in text.stdout, text.stdout + text.stderr

    assert daemon.stop() == 0
    state = tmp_path / "state"
    before = _files(state)
    for args in ((f"api#{run.number}",), ("api", "--json"), ("--summary",), ("--summary", "--json")):
        assert _explain(daemon.config_path, *args).returncode == 0
    unknown = _explain(daemon.config_path, "apj")
    assert unknown.returncode == 1 and "did you mean: api" in unknown.stderr
    after = _files(state)
    # the database and every file that was there are unchanged; SQLite may add the empty WAL and
    # its index beside a WAL database a read-only connection opens (as `buildtail status` does)
    assert {name: after[name] for name in before} == before, "explain wrote to the state directory"
    assert set(after) - set(before) <= {"buildtail.sqlite3-wal", "buildtail.sqlite3-shm"}
    assert (state / "buildtail.sqlite3-wal").stat().st_size == 0
    summary = _report(daemon.config_path, "--summary")
    [component] = summary["components"]
    assert component["component_id"] == COMPONENT
    assert component["windows"]["7d"]["build"] == {"SUCCESSFUL": 1}
    assert component["windows"]["28d"]["build_success_rate"] == 1.0
