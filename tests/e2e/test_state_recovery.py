"""The real daemon meets a damaged state database: it recovers once and delivers, or (when it cannot
rebuild it) exits with the status its unit does not restart on, instead of a crash loop."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.damage import damage, damage_table, fill
from tests.e2e.conftest import REPO, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
BUILDS = 20


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def _rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _seq(event: dict[str, object]) -> int:
    return int(next(iter(event["event"].values()))["updateSequenceNumber"])  # type: ignore[attr-defined]


def test_a_damaged_database_is_recovered_and_its_queue_delivered(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["rate_limit_per_minute"], cfg["compass"]["burst"] = 2, 1  # the rest stays queued
    daemon = daemon_factory(cfg)
    db = tmp_path / "state" / "buildtail.sqlite3"
    job = home.job("app")
    for _ in range(BUILDS):
        job.start(start_ms=int(time.time() * 1000) - 2000).finish("SUCCESS", duration_ms=500)
    terminal = "SELECT COUNT(*) FROM runs WHERE terminal = 1"
    wait_until(lambda: _rows(db, terminal)[0][0] == BUILDS, timeout=30, what="every build recorded")
    assert daemon.stop() == 0
    queued = {str(r[0]): int(r[1]) for r in _rows(db, "SELECT pipeline_id, seq FROM outbox")}
    highest = max([*queued.values(), *(_seq(e) for e in compass.events)])
    sent_before = len(compass.events)
    damage(db, "pages")

    cfg["compass"]["rate_limit_per_minute"], cfg["compass"]["burst"] = 6000, 100
    started = time.monotonic()
    again = daemon_factory(cfg)  # waits for ready
    ready_s = time.monotonic() - started
    assert "state database recovered" in again.stderr
    report = json.loads(_cli(again.config_path, "status", "--json").stdout)
    recovery = report["recovery"]
    assert Path(recovery["damaged_file"]).exists()
    salvaged = recovery["salvaged"]["outbox"]
    compass.wait_for(lambda events: len(events) >= sent_before + salvaged, timeout=30)
    after = compass.events[sent_before:]
    assert {_pid(e) for e in after} <= set(queued), "only what was queued is delivered"
    assert sum(1 for e in after if _pid(e) in queued and _seq(e) == queued[_pid(e)]) >= salvaged

    job.start()  # news after the recovery: numbered above everything the damaged database handed out
    compass.wait_for(lambda events: any(_pid(e) == f"app#{BUILDS + 1}" for e in events), timeout=30)
    new = [e for e in compass.events if _pid(e) == f"app#{BUILDS + 1}"]
    assert min(_seq(e) for e in new) > highest
    check = _cli(again.config_path, "state", "check")  # read-only: fine beside the running daemon
    assert check.returncode == 0 and check.stdout.endswith(": ok\n"), check.stdout + check.stderr
    refused = _cli(again.config_path, "state", "recover")
    assert refused.returncode == 1 and "stop the daemon" in refused.stderr
    text = _cli(again.config_path, "status").stdout
    assert "recovered" in text and recovery["damaged_file"] in text
    port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", again.stderr)
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert "buildtail_state_recoveries_total 1.0" in metrics
    assert "buildtail_state_last_recovery_timestamp_seconds 0.0" not in metrics
    print(f"\npages: {salvaged}/{len(queued)} queued events salvaged, ready after {ready_s:.2f}s")


def _pid(event: dict[str, object]) -> str:
    return str(event["event"]["build"]["buildProperties"]["pipeline"]["pipelineId"])  # type: ignore[index]


def test_builds_whose_queued_events_were_on_damaged_pages_are_sent_all_the_same(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["rate_limit_per_minute"], cfg["compass"]["burst"] = 2, 1
    daemon = daemon_factory(cfg)
    db = tmp_path / "state" / "buildtail.sqlite3"
    job = home.job("app")
    for _ in range(BUILDS):
        job.start(start_ms=int(time.time() * 1000) - 2000).finish("SUCCESS", duration_ms=500)
    terminal = "SELECT COUNT(*) FROM runs WHERE terminal = 1"
    wait_until(lambda: _rows(db, terminal)[0][0] == BUILDS, timeout=30, what="every build recorded")
    assert daemon.stop() == 0
    assert damage_table(db, "outbox") >= 1  # every queued event is gone: its outbox rows and
    assert damage_table(db, "updates") >= 1  # the updates they were rendered from

    cfg["compass"]["rate_limit_per_minute"], cfg["compass"]["burst"] = 6000, 100
    again = daemon_factory(cfg)
    recovery = json.loads(_cli(again.config_path, "status", "--json").stdout)["recovery"]
    assert recovery["salvaged"]["outbox"] == 0 and recovery["resent_runs"] >= BUILDS - 2
    every = {f"app#{n}" for n in range(1, BUILDS + 1)}
    compass.wait_for(
        lambda events: every <= {_pid(e) for e in events if _state(e) == "SUCCESSFUL"}, timeout=30
    )


def _state(event: dict[str, object]) -> str:
    return str(event["event"]["build"]["buildProperties"]["state"])  # type: ignore[index]


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs for the state directory, remounted read-only by the test: as root, permission
    bits stop no write, a read-only mount does."""
    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(state)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        yield state
    finally:
        subprocess.run(["umount", str(state)], check=False)


def test_a_damaged_database_in_a_read_only_directory_stops_with_78_once(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, read_only_mount: Path
) -> None:
    fill(read_only_mount, 30)
    db = read_only_mount / "buildtail.sqlite3"
    damage(db, "garbage")
    before = db.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    with pytest.raises(OSError):
        (read_only_mount / "probe").write_text("x")
    daemon = Daemon(tmp_path, make_config(tmp_path, home, compass))
    daemon.start(wait=False)
    assert daemon.proc is not None
    rc = daemon.proc.wait(timeout=30)
    daemon.finish()
    assert rc == 78, daemon.stderr
    fatal = [line for line in daemon.stderr.splitlines() if "cannot run" in line]
    assert len(fatal) == 1 and str(db) in fatal[0] and "state recover" in fatal[0], daemon.stderr
    assert db.read_bytes() == before and sorted(p.name for p in read_only_mount.iterdir()) == [
        "buildtail.sqlite3"
    ]
    status = _cli(daemon.config_path, "status")
    assert status.returncode == 2 and "state check" in status.stderr, status.stderr
    print(f"\nread-only: exit {rc}: {fatal[0]}")
