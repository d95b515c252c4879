"""An upgrade on a busy server while Compass is down: ``pip install --upgrade`` and a restart.

Every earlier release (its own code, from the repository's history) leaves a state directory with
queued events, a run in progress and a log checkpoint (``tests/upgrade.py``). This release then
starts on it: every queued event arrives with the number it was queued with, the run in progress
finishes under the same pipelineId and startedAt, nothing delivered or historical is sent as news.
A database newer than the code is refused, and left as it was.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from daemon.migrations import SCHEMA_VERSION, backup_path, schema_version
from tests.e2e.conftest import REPO, wait_until
from tests.releases import RELEASES
from tests.upgrade import TOKEN, OldState, leave_old_state
from tools.daemon_process import DaemonProcess
from tools.fake_compass import FakeCompass

DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def compass_options() -> dict[str, Any]:
    """The token the old releases' daemons were started with."""
    return {"token": TOKEN}


def _props(event: dict[str, object]) -> dict[str, object]:
    return event["event"]["build"]["buildProperties"]  # type: ignore[index,return-value]


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_an_upgrade_delivers_every_queued_event_and_keeps_each_run(
    tmp_path: Path, compass: FakeCompass, version: str
) -> None:
    old = leave_old_state(version, tmp_path, compass)
    if old is None:
        pytest.skip("the repository's history (the earlier release's commit) is not here")
    assert len(old.queued) == 3, old.queued
    compass.unscript()  # Compass is back
    compass.clear()
    with closing(sqlite3.connect(old.state_dir / "buildtail.sqlite3")) as db:
        old_schema = schema_version(db)
    assert old_schema is not None

    new = DaemonProcess(tmp_path, old.config, token=TOKEN, name="upgraded")
    try:
        new.start(wait=True)
        running_id = f"app#{old.running.number}"
        # backoffs live in the outbox and survive the restart: an event the old release tried many
        # times (it may wait 30 s for a build.xml) goes again only when its backoff is over
        wait_until(
            lambda: set(old.queued) <= set(compass.builds()),
            timeout=10 + _backoff_left_s(old.state_dir),
            what="the queued events",
        )
        for pipeline_id, (state, seq) in old.queued.items():
            (event,) = compass.builds()[pipeline_id]
            assert _props(event)["state"] == state
            assert event["event"]["build"]["updateSequenceNumber"] == seq, "sent as queued, not as news"
        started = _props(compass.builds()[running_id][0])["startedAt"]

        old.running.finish("SUCCESS")
        with old.cron_log.open("a") as fh:
            fh.write("START backup 3\nEND backup 3 ok\n")  # the checkpoint survived: only this is new
        wait_until(lambda: len(compass.builds().get(running_id, [])) == 2, timeout=10, what="the run's end")
        wait_until(lambda: "backup#3" in compass.builds(), timeout=10, what="the log's next run")
        final = compass.builds()[running_id][-1]
        assert _props(final)["state"] == "SUCCESSFUL"
        assert _props(final)["startedAt"] == started
        assert sorted(compass.builds()) == sorted({*old.queued, "backup#3"}), "no history, nothing twice"
        assert compass.invalid == []
        if old_schema < SCHEMA_VERSION:
            assert "upgrading the state database" in new.stderr
        status = subprocess.run(
            [sys.executable, "-m", "daemon", "status", "--json", "--config", str(new.config_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(status.stdout)
        assert report["schema"]["version"] == SCHEMA_VERSION
        assert report["queue"]["depth"] == 0
    finally:
        if new.alive():
            assert new.stop() == 0, new.stderr
    db_path = old.state_dir / "buildtail.sqlite3"
    if old_schema < SCHEMA_VERSION:
        copy = backup_path(db_path, old_schema)
        assert copy.is_file(), "the database as the earlier release left it"
        db = sqlite3.connect(copy)
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (str(old_schema),)
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (len(old.queued),)
        db.close()
    _refuses_a_newer_database(tmp_path, old, db_path)


def _backoff_left_s(state_dir: Path) -> float:
    """Seconds until the last of the old release's queued events is due again."""
    db = sqlite3.connect(state_dir / "buildtail.sqlite3")
    try:
        (due_ms,) = db.execute("SELECT MAX(next_attempt_ms) FROM outbox").fetchone()
    finally:
        db.close()
    return max(0.0, (due_ms or 0) / 1000 - time.time())


def _refuses_a_newer_database(tmp_path: Path, old: OldState, db_path: Path) -> None:
    """A release that knows less than the database (a downgrade) stops at once and changes nothing."""
    db = sqlite3.connect(db_path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    digest = hashlib.sha256(db_path.read_bytes()).hexdigest()
    refused = DaemonProcess(tmp_path, old.config, token=TOKEN, name="downgraded").start()
    assert refused.proc is not None
    assert refused.proc.wait(timeout=20) != 0
    refused.finish()
    assert "written by a newer buildtail" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == digest
