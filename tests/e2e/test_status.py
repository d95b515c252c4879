"""``buildtail status`` beside the real processes: a daemon up, stopped with SIGTERM, killed with
SIGKILL, a backfill delivering while the daemon is down; the text and the ``--json`` shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon import __version__
from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass, Fault
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]


def _status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COMPASS_API_TOKEN"}  # it needs no credentials
    return subprocess.run(
        [sys.executable, "-m", "daemon", "status", "--config", str(config), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=30,
    )


def _json(config: Path) -> tuple[dict[str, Any], int]:
    proc = _status(config, "--json")
    assert proc.stderr == "", proc.stderr
    report = json.loads(proc.stdout)
    assert report["exit_code"] == proc.returncode
    return report, proc.returncode


def _line(text: str, key: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"{key} ")]
    return line[len(key) :].strip()


def _ms(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


def _finished_now(home: JenkinsHome, job: str = "app") -> None:
    home.job(job).start(start_ms=int(time.time() * 1000) - 2000).finish("SUCCESS", duration_ms=500)


def test_status_with_the_daemon_up_then_stopped_cleanly(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    before = int(time.time()) * 1000
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    _finished_now(home)
    compass.wait_for(lambda events: len(events) == 1)
    wait_until(lambda: _json(daemon.config_path)[0]["last_delivery"] is not None, what="the delivery")

    text = _status(daemon.config_path)
    assert text.returncode == 0, text.stdout + text.stderr
    process = _line(text.stdout, "process")
    assert process.startswith(f"daemon running (pid {daemon.pid}, buildtail {__version__}, started ")
    assert _line(text.stdout, "delivery") == "running"
    assert _line(text.stdout, "dead letters") == "0"

    report, code = _json(daemon.config_path)
    assert code == 0 and report["format"] == 1 and report["attention"] == []
    p = report["process"]
    assert (p["state"], p["kind"], p["pid"], p["version"]) == ("running", "daemon", daemon.pid, __version__)
    assert before - 2000 <= _ms(p["since"]) <= _ms(p["delivering_since"]) <= time.time() * 1000
    assert p["dry_run"] is False
    assert report["delivery"] == {
        "state": "running",
        "reason": None,
        "since": None,
        "until": None,
        "cause": None,
        "answer": None,
    }
    assert report["queue"]["depth"] == 0 and report["queue"]["by_state"] == {}
    assert report["queue"]["oldest_at"] is None and report["queue"]["oldest_age_s"] is None
    assert 0 <= report["last_delivery"]["age_s"] < 60
    assert report["dead_letters"] == {"count": 0, "items": []}
    assert report["budget"]["limit_per_minute"] == 6000 and report["budget"]["burst"] == 100
    assert report["state_database"] == str(tmp_path / "state" / "buildtail.sqlite3")

    pid = daemon.pid
    assert daemon.stop() == 0
    text = _status(daemon.config_path)
    assert text.returncode == 3, "no process delivers: exit 3, as systemctl status says for a stopped unit"
    assert _line(text.stdout, "process").startswith(f"not running: daemon (pid {pid}) stopped cleanly ")
    assert _line(text.stdout, "delivery").startswith("not paused (nothing is sent until")
    report, code = _json(daemon.config_path)
    assert code == 3 and report["attention"] == ["not_running"]
    assert report["process"]["state"] == "stopped" and report["process"]["pid"] == pid
    assert report["process"]["last_stop"]["pid"] == pid and report["process"]["last_stop"]["kind"] == "daemon"
    assert _ms(report["process"]["last_stop"]["at"]) >= _ms(report["process"]["delivering_since"])


def test_status_after_the_daemon_was_killed(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    first = daemon.pid
    assert daemon.stop() == 0
    daemon.start()
    killed = daemon.pid
    daemon.kill()  # SIGKILL: the kernel drops the lock, the lock file still names the process
    assert json.loads((tmp_path / "state" / "delivery.lock").read_text())["pid"] == killed

    text = _status(daemon.config_path)
    assert text.returncode == 3
    process = _line(text.stdout, "process")
    assert process.startswith(
        f"NOT RUNNING: the last holder (daemon, pid {killed}, buildtail {__version__})"
        " did not stop cleanly (killed?); last clean stop "
    )
    report, _ = _json(daemon.config_path)
    assert report["attention"] == ["crashed"]
    p = report["process"]
    assert (p["state"], p["pid"], p["kind"]) == ("crashed", killed, "daemon")
    assert p["last_stop"]["pid"] == first, "the clean stop before is not taken for this one"

    daemon.start()  # the next start takes over, and says so
    report, code = _json(daemon.config_path)
    assert code == 0 and report["process"]["state"] == "running" and report["process"]["pid"] == daemon.pid


def test_status_json_lists_dead_letters_and_a_backoff(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    error = {"errors": [{"type": "FORMAT_INVALID", "message": "displayName is not acceptable"}]}
    compass.script(Fault(status=400, body=error), Fault(status=503, retry_after="120"))
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    _finished_now(home, "rejected")
    wait_until(lambda: "dead letter" in daemon.stderr, what="the dead letter")
    _finished_now(home, "later")
    wait_until(lambda: "retrying in" in daemon.stderr, what="the 503")

    report, code = _json(daemon.config_path)
    assert code == 1 and report["attention"] == ["dead_letters"]
    [dead] = report["dead_letters"]["items"]
    assert report["dead_letters"]["count"] == 1
    assert dead["pipeline_id"] == "rejected#1" and dead["status"] == 400 and "FORMAT_INVALID" in dead["error"]
    delivery = report["delivery"]
    assert delivery["state"] == "backing_off" and delivery["reason"].startswith("503")
    assert 100_000 <= _ms(delivery["until"]) - time.time() * 1000 <= 121_000
    assert report["queue"]["depth"] == 1 and report["queue"]["by_state"] == {"SUCCESSFUL": 1}
    assert report["queue"]["oldest_age_s"] is not None and report["queue"]["last_error"].startswith("503")
    text = _status(daemon.config_path)
    until = delivery["until"].replace("T", " ").replace("Z", " UTC")
    assert _line(text.stdout, "delivery").startswith(f"backing off until {until} (in ")
    assert "rejected#1 seq " in text.stdout and "HTTP 400" in text.stdout

    assert daemon.stop() == 0
    report, code = _json(daemon.config_path)
    assert code == 3, "not running wins over dead letters: nothing is delivered at all"
    assert report["attention"] == ["not_running", "dead_letters"]


def _history(home: JenkinsHome, runs: int) -> None:
    now = int(time.time() * 1000)
    job = home.job("old")
    for i in range(runs):
        job.start(start_ms=now - (100 - i) * 3_600_000).finish("SUCCESS", duration_ms=1000)


def test_status_while_a_backfill_delivers_with_the_daemon_down(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    _history(home, 6)
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"].update(rate_limit_per_minute=61, burst=1)  # one per second: the backfill takes a while
    daemon = daemon_factory(cfg)
    assert daemon.stop() == 0  # the first start: history is not news
    log = tmp_path / "backfill.log"
    cmd = [sys.executable, "-m", "daemon", "backfill", "--config", str(daemon.config_path), "--since", "30d"]
    with open(log, "wb") as out:
        backfill = subprocess.Popen(
            cmd, cwd=REPO, env=dict(os.environ, COMPASS_API_TOKEN=TOKEN), stdout=out, stderr=out
        )
    try:
        compass.wait_for(lambda events: len(events) >= 1, timeout=30)
        report, code = _json(daemon.config_path)
        p = report["process"]
        assert (p["state"], p["kind"], p["pid"]) == ("running", "backfill", backfill.pid), log.read_text()
        assert code == 0 and report["queue"]["backfill"] >= 1
        text = _status(daemon.config_path)
        assert _line(text.stdout, "process").startswith(f"backfill running (pid {backfill.pid}, ")
        assert "from backfill" in _line(text.stdout, "queue")
        assert backfill.wait(timeout=60) == 0, log.read_text()
    finally:
        if backfill.poll() is None:
            backfill.send_signal(signal.SIGINT)
            backfill.wait(timeout=20)
    report, code = _json(daemon.config_path)
    assert code == 3
    p = report["process"]
    assert (p["state"], p["kind"], p["pid"]) == ("stopped", "backfill", backfill.pid)
    assert p["last_stop"] == {"kind": "backfill", "pid": backfill.pid, "at": p["last_stop"]["at"]}
    text = _status(daemon.config_path)
    stopped = f"not running: backfill (pid {backfill.pid}) stopped cleanly"
    assert _line(text.stdout, "process").startswith(stopped)
