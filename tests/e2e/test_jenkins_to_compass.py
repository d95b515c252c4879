"""End to end: builds written the way Jenkins writes them arrive in (a fake) Compass as correct events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TOKEN, Daemon, make_config, wait_until
from tests.fake_compass import FakeCompass, Fault
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


@pytest.mark.parametrize(
    ("result", "timed_out", "state"),
    [
        ("SUCCESS", False, "SUCCESSFUL"),
        ("FAILURE", False, "FAILED"),
        ("UNSTABLE", False, "FAILED"),
        ("ABORTED", False, "CANCELLED"),
        ("NOT_BUILT", False, "CANCELLED"),
        ("ABORTED", True, "TIMED_OUT"),
    ],
)
def test_every_jenkins_result_maps_to_its_state(
    tmp_path: Path,
    home: JenkinsHome,
    compass: FakeCompass,
    daemon_factory: DaemonFactory,
    result: str,
    timed_out: bool,
    state: str,
) -> None:
    job = home.job("app", kind="pipeline")
    daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish(result, timed_out=timed_out)
    assert _props(_terminal(compass, "app#1"))["state"] == state
    assert compass.invalid == []


def test_state_map_overrides_the_defaults(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    cfg = make_config(tmp_path, home, compass)
    cfg["state_map"] = {"UNSTABLE": "SUCCESSFUL", "FAILURE": "ERROR"}
    daemon_factory(cfg)
    job.start().finish("UNSTABLE")
    job.start().finish("FAILURE")
    assert _props(_terminal(compass, "app#1"))["state"] == "SUCCESSFUL"
    assert _props(_terminal(compass, "app#2"))["state"] == "ERROR"


def test_running_pipeline_rewritten_in_place_is_never_reported_finished(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("pipe", kind="pipeline")
    daemon_factory(make_config(tmp_path, home, compass))
    run = job.start(durability="PERFORMANCE_OPTIMIZED")
    for i in range(30):  # in-place truncate + rewrite: the daemon may read half-written files
        run.checkpoint()
        run.log(f"[Pipeline] step {i}")
    run.finish("FAILURE")
    final = _terminal(compass, "pipe#1")
    states = _states(compass, "pipe#1")
    assert states[-1] == "FAILED" and set(states[:-1]) <= {"IN_PROGRESS"}
    assert _props(final)["completedAt"] is not None


def test_folders_multibranch_and_matrix(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    folder_job = home.job("team/backend/api")
    branches = home.multibranch("shop", ["main", "feature/login"])
    matrix = home.job("mx", kind="matrix", axes={"OS": ["linux", "windows"]})
    daemon_factory(make_config(tmp_path, home, compass))
    folder_job.start().finish("SUCCESS")
    branches["feature/login"].start().finish("FAILURE")
    branches["main"].start().finish("SUCCESS")
    matrix.start().finish("SUCCESS")
    api = _terminal(compass, "team/backend/api#1")
    assert api["event"]["build"]["url"] == "https://jenkins.example.com/job/team/job/backend/job/api/1/"
    feature = _terminal(compass, "shop/feature/login#1")
    assert _props(feature)["state"] == "FAILED"
    assert _props(feature)["pipeline"]["displayName"] == "shop/feature/login"
    assert _props(_terminal(compass, "shop/main#1"))["state"] == "SUCCESSFUL"
    assert _props(_terminal(compass, "mx#1"))["state"] == "SUCCESSFUL"
    time.sleep(0.5)
    assert not [p for p in compass.builds() if p.startswith("mx/")], (
        "matrix configurations are off by default"
    )


def test_matrix_configurations_when_enabled(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    matrix = home.job("mx", kind="matrix", axes={"OS": ["linux", "windows"]})
    matrix.start().finish("SUCCESS")  # creates the configuration jobs, before the daemon's first start
    daemon_factory(make_config(tmp_path, home, compass, matrix_configurations=True))
    matrix.start().finish("FAILURE")
    compass.wait_for(lambda _: {"mx#2", "mx/OS=linux#2", "mx/OS=windows#2"} <= set(compass.builds()))
    assert _props(compass.builds()["mx/OS=linux#2"][-1])["state"] == "FAILED"
    assert "mx#1" not in compass.builds(), "history from before the first start is not sent"


def test_first_start_reports_only_runs_in_progress(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("busy")
    for result in ("SUCCESS", "FAILURE", "SUCCESS"):
        job.start(start_ms=int(time.time() * 1000) - 3_600_000).finish(result, duration_ms=1000)
    pipe = home.job("pipe", kind="pipeline")
    pipe.start().finish("SUCCESS")
    running_pipe = pipe.start()
    running_free = job.start()
    running_free.log("compiling")
    daemon_factory(make_config(tmp_path, home, compass))
    compass.wait_for(lambda _: {"busy#4", "pipe#2"} <= set(compass.builds()))
    time.sleep(1.0)
    assert sorted(compass.builds()) == ["busy#4", "pipe#2"]
    assert _states(compass, "busy#4") == ["IN_PROGRESS"]
    running_free.finish("SUCCESS")
    running_pipe.finish("ABORTED")
    assert _props(_terminal(compass, "busy#4"))["state"] == "SUCCESSFUL"
    assert _props(_terminal(compass, "pipe#2"))["state"] == "CANCELLED"


def test_restart_in_the_middle_misses_nothing_and_resends_nothing(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish("SUCCESS")
    _terminal(compass, "app#1")
    long_run = job.start()
    compass.wait_for(lambda _: _states(compass, "app#2") == ["IN_PROGRESS"])
    assert daemon.stop() == 0
    long_run.finish("FAILURE")  # finishes while the daemon is down
    job.start().finish("SUCCESS")  # starts and finishes while down
    still_running = job.start()  # starts while down, still running at restart
    daemon.start()
    assert _props(_terminal(compass, "app#2"))["state"] == "FAILED"
    assert _props(_terminal(compass, "app#3"))["state"] == "SUCCESSFUL"
    compass.wait_for(lambda _: _states(compass, "app#4") == ["IN_PROGRESS"])
    still_running.finish("SUCCESS")
    _terminal(compass, "app#4")
    for pipeline_id, events in compass.builds().items():
        states = [_props(e)["state"] for e in events]
        assert len(states) == len(set(states)), f"{pipeline_id}: an event was sent twice: {states}"
    assert _states(compass, "app#2") == ["IN_PROGRESS", "FAILED"]
    assert _states(compass, "app#3") == ["SUCCESSFUL"]
    seqs = [e["event"]["build"]["updateSequenceNumber"] for e in compass.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert daemon.stop() == 0


def test_discarded_builds_and_atomic_temp_files_send_nothing(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    daemon_factory(make_config(tmp_path, home, compass))
    for _ in range(3):
        job.start().finish("SUCCESS")
    for n in (1, 2, 3):
        _terminal(compass, f"app#{n}")
    before = len(compass.events)
    job.discard(1)
    job.discard(2)
    (job.builds_dir / "3" / "build.xml-atomic123tmp").write_text("<build")
    time.sleep(2.5)  # longer than one reconcile interval
    assert len(compass.events) == before


def test_recreated_job_reusing_a_number_gets_a_distinct_pipeline_id(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish("SUCCESS")
    _terminal(compass, "app#1")
    home.delete_job("app")
    time.sleep(0.3)
    job = home.job("app")
    job.start(start_ms=int(time.time() * 1000) + 5000).finish("FAILURE")
    compass.wait_for(lambda _: "app#1.2" in compass.builds())
    assert _props(_terminal(compass, "app#1.2"))["state"] == "FAILED"
    assert "FAILED" not in _states(compass, "app#1"), "the new run overwrote the old one"


def test_polling_mode(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("nfs/app")
    daemon = daemon_factory(make_config(tmp_path, home, compass, watch="polling", poll_interval="200ms"))
    assert "0 watch(es)" in daemon.stderr
    run = job.start()
    compass.wait_for(lambda _: _states(compass, "nfs/app#1") == ["IN_PROGRESS"])
    run.finish("SUCCESS")
    assert _props(_terminal(compass, "nfs/app#1"))["state"] == "SUCCESSFUL"
    home.job("nfs/new-job").start().finish("FAILURE")  # a job created while running
    assert _props(_terminal(compass, "nfs/new-job#1"))["state"] == "FAILED"


def test_new_jobs_are_noticed_without_watching_their_containers(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    home.job("app").start().finish("SUCCESS")
    home.job("team/api").start().finish("SUCCESS")
    running = home.job("team/web").start()
    # no reconcile scan to fall back on: only the containers' stat can find the new jobs
    daemon = daemon_factory(make_config(tmp_path, home, compass, reconcile_interval="1h"))
    ready = next(line for line in daemon.stderr.splitlines() if "ready:" in line)
    assert "3 job(s)" in ready and "1 run(s) in progress" in ready
    assert "4 watch(es)" in ready, "one per job and one per running build, nothing for jobs/ or team/jobs/"
    started = time.monotonic()
    home.job("fresh").start().finish("FAILURE")  # in jobs/
    home.job("team/new").start().finish("SUCCESS")  # in a folder's jobs/
    assert _props(_terminal(compass, "fresh#1"))["state"] == "FAILED"
    assert _props(_terminal(compass, "team/new#1"))["state"] == "SUCCESSFUL"
    assert time.monotonic() - started < 8
    running.finish("SUCCESS")
    assert _props(_terminal(compass, "team/web#1"))["state"] == "SUCCESSFUL"
    assert daemon.stop() == 0


def test_custom_builds_dir(tmp_path: Path, compass: FakeCompass, daemon_factory: DaemonFactory) -> None:
    home = JenkinsHome(tmp_path / "jenkins", builds_dir="${JENKINS_HOME}/builds/${ITEM_FULL_NAME}")
    job = home.job("folder/app")
    job.start().finish("SUCCESS")
    assert job.builds_dir == home.root / "builds" / "folder" / "app"
    daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish("FAILURE")
    assert _props(_terminal(compass, "folder/app#2"))["state"] == "FAILED"
    assert "folder/app#1" not in compass.builds()


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
    from tests.fake_compass import validate_body

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


def test_absurd_numbers_in_a_record_never_crash_the_daemon(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    job = home.job("app")
    daemon = daemon_factory(make_config(tmp_path, home, compass))
    job.start().finish("SUCCESS", duration_ms=999_999_999_999_999_999)
    job.start().finish("FAILURE")
    final = _terminal(compass, "app#1")
    assert _props(final)["completedAt"].startswith("9999-12-31"), "clamped to the last representable time"
    assert _props(_terminal(compass, "app#2"))["state"] == "FAILED"
    assert daemon.alive() and daemon.stop() == 0


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


def test_a_symlink_loop_in_a_live_home_adds_no_phantom_job(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    for name in ("app", "team/api"):
        job = home.job(name)
        for _ in range(3):
            job.start().finish("SUCCESS")  # history: never sent
    jobs = home.root / "jobs"
    (jobs / "loop").mkdir()
    (jobs / "loop" / "jobs").symlink_to("../../jobs")  # a folder whose jobs are the home's: at the start
    daemon = daemon_factory(make_config(tmp_path, home, compass, reconcile_interval="1h"))
    ready = next(line for line in daemon.stderr.splitlines() if "ready:" in line)
    assert "2 job(s)" in ready and "2 watch(es)" in ready, ready  # app and team/api, nothing phantom

    (jobs / "team" / "jobs" / "up").symlink_to("../../../jobs")  # a job that is the home: while it runs
    wait_until(lambda: "team/jobs/up leads to" in daemon.stderr, timeout=10, what="the new loop noticed")
    home.job("app").start().finish("FAILURE")
    final = _terminal(compass, "app#4")
    assert _props(final)["state"] == "FAILED"
    time.sleep(0.5)  # anything phantom found with the loop would have been sent by now
    assert set(compass.builds()) == {"app#4"}, sorted(compass.builds())
    assert daemon.stderr.count("already read") == 2, "each loop said once"
