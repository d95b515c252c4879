"""End to end: the real ``buildtail run`` process delivers builds written the way Jenkins writes them to
(a fake) Compass over HTTP. How each kind of build becomes an event is tested with the service in
process (``tests/daemon/test_service_jenkins.py``); what stays here needs the process or real HTTP:
the wire, credentials, dry run, systemd, restarts of the process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.conftest import TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass, Fault
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]


def _props(event: dict[str, Any]) -> dict[str, Any]:
    return event["event"]["build"]["buildProperties"]  # type: ignore[no-any-return]


def _states(compass: FakeCompass, pipeline_id: str) -> list[str]:
    return [_props(e)["state"] for e in compass.builds().get(pipeline_id, [])]


def _terminal(compass: FakeCompass, pipeline_id: str, timeout: float = 10.0) -> dict[str, Any]:
    compass.wait_for(lambda _: any(s != "IN_PROGRESS" for s in _states(compass, pipeline_id)), timeout)
    return compass.builds()[pipeline_id][-1]


def _iso_ms(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def test_freestyle_run_sends_in_progress_then_successful(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("hello")
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    run = job.start()
    compass.wait_for(lambda _: _states(compass, "hello#1") == ["IN_PROGRESS"])
    for i in range(5):
        run.log(f"step {i}")
    run.finish("SUCCESS", duration_ms=4321)
    final = _terminal(compass, "hello#1")
    first = compass.builds()["hello#1"][0]
    b0, b1 = first["event"]["build"], final["event"]["build"]
    assert _props(final)["state"] == "SUCCESSFUL"
    assert b1["updateSequenceNumber"] > b0["updateSequenceNumber"]
    assert _props(first)["startedAt"] == _props(final)["startedAt"]
    assert _props(first)["completedAt"] is None
    completed = _iso_ms(_props(final)["completedAt"])
    assert completed == run.start_ms + 4321
    assert b1["externalEventSourceId"] == b0["externalEventSourceId"] == "build01.example.com"
    assert b1["displayName"] == "hello #1"
    assert b1["url"] == "https://jenkins.example.com/job/hello/1/"
    assert _props(final)["pipeline"] == {
        "pipelineId": "hello#1",
        "url": "https://jenkins.example.com/job/hello/",
        "displayName": "hello",
    }
    assert "SUCCESS" in b1["description"] and "Started by user admin" in b1["description"]
    assert compass.invalid == []
    assert daemon.stop() == 0


def test_transient_errors_are_retried_in_order(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    compass.script(Fault(status=503), Fault(reset=True), Fault(status=502))
    job = home.job("app")
    daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish("SUCCESS")
    job.start().finish("FAILURE")
    compass.wait_for(lambda _: {"app#1", "app#2"} <= set(compass.builds()), timeout=30)
    for pipeline_id in ("app#1", "app#2"):
        states = _states(compass, pipeline_id)
        assert states[-1] != "IN_PROGRESS" and "IN_PROGRESS" not in states[1:], f"{pipeline_id}: {states}"
    statuses = [r.status for r in compass.requests]
    assert statuses[:3] == [503, None, 502]


def test_bad_credentials_keep_events_and_never_log_the_token(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cfg = make_config(tmp_path, home, compass)
    job = home.job("app")
    compass.token = "another-token"  # the daemon's token is now wrong
    compass.expected_authorization = "Basic bm90LXRoZS1yaWdodC1vbmU="
    daemon = daemon_factory(cfg)
    job.start().finish("SUCCESS")
    wait_until(lambda: "refused the credentials" in daemon.stderr, what="the auth error in the log")
    assert compass.events == []
    assert TOKEN not in daemon.stderr
    assert daemon.stop() == 0


def test_dry_run_prints_exact_bodies_and_needs_no_network(
    tmp_path: Path, home: JenkinsHome, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    cfg = make_config(tmp_path, home, None)
    daemon = daemon_factory(cfg, dry_run=True)
    run = job.start()
    wait_until(lambda: daemon.stdout.count("\n") >= 1, what="the IN_PROGRESS line")
    run.finish("SUCCESS")
    wait_until(lambda: daemon.stdout.count("\n") >= 2, what="two JSON lines")
    lines = [json.loads(line) for line in daemon.stdout.splitlines()]
    assert [b["event"]["build"]["buildProperties"]["state"] for b in lines] == ["IN_PROGRESS", "SUCCESSFUL"]
    from tools.fake_compass import validate_body

    for body in lines:
        assert validate_body(body) is None
    assert daemon.stop() == 0


def test_check_config_and_version(tmp_path: Path, home: JenkinsHome) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "host: h\n"
        "compass:\n"
        "  site: example.atlassian.net\n"
        "  cloud_id: c\n"
        "  email: a@b.c\n"
        "  api_token: ${BUILDTAIL_TEST_UNSET_VARIABLE}\n"
        "sources:\n"
        "  - type: jenkins\n"
        "    home: /nonexistent/jenkins\n"
        "    colour: blue\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "--config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert (
        f"{bad}:6: compass.api_token: environment variable BUILDTAIL_TEST_UNSET_VARIABLE is not set"
        in proc.stderr
    )
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("buildtail ")
    assert TOKEN not in proc.stderr


def test_systemd_notify_ready_watchdog_and_stopping(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    import os
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(10)
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    os.environ["WATCHDOG_USEC"] = "400000"  # ping every 0.2 s
    try:
        daemon = daemon_factory(make_config(tmp_path, home, compass), start=False)
        daemon.start(wait=False)
        messages: list[list[str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(m == ["WATCHDOG=1"] for m in messages) < 3:
            messages.append(sock.recv(4096).decode().split("\n"))
        ready = next(m for m in messages if "READY=1" in m)
        assert any(line.startswith("STATUS=") and "job(s)" in line for line in ready)
        assert messages.index(ready) < next(i for i, m in enumerate(messages) if m == ["WATCHDOG=1"])
        assert daemon.stop() == 0
        tail = [sock.recv(4096).decode().split("\n") for _ in range(1)]
        while True:
            if "STOPPING=1" in tail[-1]:
                break
            tail.append(sock.recv(4096).decode().split("\n"))
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
        sock.close()


def test_polling_after_a_restart_sees_the_next_run_at_once(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    job.start().finish("SUCCESS")
    cfg = make_config(
        tmp_path, home, compass, watch="polling", poll_interval="200ms", reconcile_interval="1h"
    )
    daemon = daemon_factory(cfg)
    assert daemon.stop() == 0
    time.sleep(1.1)  # the builds directory is now older than the last complete scan
    daemon.start()
    run = job.start()
    compass.wait_for(lambda _: _states(compass, "app#2") == ["IN_PROGRESS"], timeout=5)
    run.finish("SUCCESS")
    assert _props(_terminal(compass, "app#2"))["state"] == "SUCCESSFUL"
