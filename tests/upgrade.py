"""A state directory as an earlier release leaves it on a busy server while Compass is down.

The release's own code runs (``tests/releases.py``) against a Jenkins home and a log file written
the way the CI writes them, with Compass answering 503: it records history as history, queues the
IN_PROGRESS of a run that is still going and the final events of runs that finished, keeps a log
file's checkpoint, and is stopped with SIGTERM, as ``systemctl restart`` does before an upgrade.

``python -m tests.upgrade [VERSION ...]`` writes ``tests/fixtures/state-<version>.sql``, the database of that
state as SQL text, for the migration tests that must run without the repository's history.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.releases import RELEASES, release_tree
from tools.daemon_process import DaemonProcess
from tools.fake_compass import FakeCompass, Fault
from tools.fake_jenkins import JenkinsHome, Run

__all__ = ["FIXTURES", "TOKEN", "OldState", "config_for", "fixture_path", "leave_old_state"]

TOKEN = "upgrade-token-not-a-secret"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass
class OldState:
    home: JenkinsHome
    config: dict[str, Any]
    state_dir: Path
    running: Run  # still in progress: its IN_PROGRESS is queued
    cron_log: Path
    queued: dict[str, tuple[str, int]]  # pipelineId -> (state, updateSequenceNumber) waiting to be sent
    stderr: str


def config_for(work: Path, home: JenkinsHome, compass: FakeCompass) -> dict[str, Any]:
    """A configuration every release so far reads the same way."""
    return {
        "host": "build01.example.com",
        "state_dir": str(work / "state"),
        "log_level": "debug",
        "metrics": {"listen": "127.0.0.1:0"},
        "compass": {
            "base_url": compass.base_url,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "api_token": "${COMPASS_API_TOKEN}",
            "timeout": "3s",
            "rate_limit_per_minute": 6000,
            "burst": 100,
        },
        "sources": [
            {"type": "jenkins", "home": str(home.root), "url": "https://jenkins.example.com/"},
            {
                "type": "log",
                "name": "cron",
                "paths": [str(work / "logs" / "*.log")],
                "rules": {
                    "start": r"^START (?P<name>\S+) (?P<id>\d+)$",
                    "finish": r"^END (?P<name>\S+) (?P<id>\d+) (?P<result>\w+)$",
                    "result_map": {"ok": "SUCCESSFUL"},
                },
            },
        ],
    }


def _queued(state_dir: Path) -> dict[str, tuple[str, int]]:
    db = sqlite3.connect(f"file:{state_dir / 'buildtail.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT pipeline_id, state, seq FROM outbox").fetchall()
    finally:
        db.close()
    return {str(p): (str(s), int(q)) for p, s, q in rows}


def leave_old_state(version: str, work: Path, compass: FakeCompass) -> OldState | None:
    """Runs ``version`` until it has queued its events, then stops it; None without the history."""
    tree = release_tree(version, work / "releases")
    if tree is None:
        return None
    home = JenkinsHome(work / "jenkins")
    app, api = home.job("app"), home.job("team/api")
    for _ in range(2):
        app.start().finish("SUCCESS")  # history: never news
    api.start().finish("SUCCESS")
    cron_log = work / "logs" / "cron.log"
    cron_log.parent.mkdir(parents=True)
    cron_log.write_text("START backup 1\nEND backup 1 ok\n")  # there before the first start: history
    config = config_for(work, home, compass)
    compass.script(*[Fault(status=503)] * 10_000)  # Compass is down
    old = DaemonProcess(work, config, token=TOKEN, name=f"buildtail-{version}", code=tree)
    try:
        old.start(wait=True)
        running = app.start()
        running.log("compiling")
        api.start().finish("FAILURE")
        with cron_log.open("a") as fh:
            fh.write("START backup 2\nEND backup 2 ok\n")
        wanted = {f"app#{running.number}", "team/api#2", "backup#2"}
        deadline = time.monotonic() + 60  # 0.1.0 may wait 30 s for a build.xml it looked for too early
        while not wanted <= set(_queued(Path(config["state_dir"]))):
            if time.monotonic() > deadline:
                raise AssertionError(f"{version} did not queue {wanted}:\n{old.stderr}")
            time.sleep(0.05)
    finally:
        if old.alive():
            assert old.stop() == 0, old.stderr
    state_dir = Path(config["state_dir"])
    return OldState(home, config, state_dir, running, cron_log, _queued(state_dir), old.stderr)


def fixture_path(version: str) -> Path:
    return FIXTURES / f"state-{version}.sql"


def main(versions: list[str]) -> int:
    """Writes the fixture of each release named (every release without names)."""
    for version in versions or RELEASES:
        with tempfile.TemporaryDirectory() as tmp, FakeCompass(token=TOKEN) as compass:
            state = leave_old_state(version, Path(tmp), compass)
            if state is None:
                print(f"{version}: the repository's history is not here", file=sys.stderr)
                return 1
            db = sqlite3.connect(state.state_dir / "buildtail.sqlite3")
            try:
                dump = "\n".join(db.iterdump()) + "\n"
            finally:
                db.close()
        fixture_path(version).parent.mkdir(exist_ok=True)
        fixture_path(version).write_text(dump, encoding="utf-8")
        print(f"wrote {fixture_path(version)} ({len(dump.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
