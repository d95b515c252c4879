"""Builds written the way Jenkins writes them arrive as correct events: the real ``Service`` in the
test's event loop, with a scripted transport where Compass's HTTP API would be (every body checked
against the Compass schemas). The process itself is not what these are about; its own tests (signals,
systemd, kill -9, dry run, credentials) stay in ``tests/e2e``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from tests.conftest import StartService
from tests.inprocess import InProcess, running, settings_from, until
from tests.scripted import ScriptedTransport
from tools.fake_jenkins import JenkinsHome

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")


@pytest.fixture
def home(tmp_path: Path) -> JenkinsHome:
    return JenkinsHome(tmp_path / "jenkins")


def _settings(
    tmp_path: Path, home: JenkinsHome, top: dict[str, Any] | None = None, **source: Any
) -> Settings:
    return settings_from(
        {
            "host": "build01.example.com",
            "state_dir": str(tmp_path / "state"),
            "sources": [
                {
                    "type": "jenkins",
                    "home": str(home.root),
                    "url": "https://jenkins.example.com/",
                    "reconcile_interval": "500ms",
                    **source,
                }
            ],
            **(top or {}),
        }
    )


def _props(body: dict[str, Any]) -> dict[str, Any]:
    return body["event"]["build"]["buildProperties"]  # type: ignore[no-any-return]


def _states(compass: ScriptedTransport, pipeline_id: str) -> list[str]:
    return compass.states(pipeline_id)


async def _terminal(compass: ScriptedTransport, pipeline_id: str, within: float = 10.0) -> dict[str, Any]:
    await until(
        f"{pipeline_id} finished",
        lambda: any(s != "IN_PROGRESS" for s in compass.states(pipeline_id)),
        within,
    )
    return compass.builds()[pipeline_id][-1]


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
async def test_every_jenkins_result_maps_to_its_state(
    tmp_path: Path, home: JenkinsHome, in_process: StartService, result: str, timed_out: bool, state: str
) -> None:
    job = home.job("app", kind="pipeline")
    daemon = await in_process(_settings(tmp_path, home))
    job.start().finish(result, timed_out=timed_out)
    assert _props(await _terminal(daemon.transport, "app#1"))["state"] == state


async def test_state_map_overrides_the_defaults(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("app")
    daemon = await in_process(
        _settings(tmp_path, home, {"state_map": {"UNSTABLE": "SUCCESSFUL", "FAILURE": "ERROR"}})
    )
    job.start().finish("UNSTABLE")
    job.start().finish("FAILURE")
    assert _props(await _terminal(daemon.transport, "app#1"))["state"] == "SUCCESSFUL"
    assert _props(await _terminal(daemon.transport, "app#2"))["state"] == "ERROR"


async def test_running_pipeline_rewritten_in_place_is_never_reported_finished(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("pipe", kind="pipeline")
    daemon = await in_process(_settings(tmp_path, home))
    run = job.start(durability="PERFORMANCE_OPTIMIZED")
    for i in range(30):  # in-place truncate + rewrite: the daemon may read half-written files
        run.checkpoint()
        run.log(f"[Pipeline] step {i}")
    run.finish("FAILURE")
    final = await _terminal(daemon.transport, "pipe#1")
    states = _states(daemon.transport, "pipe#1")
    assert states[-1] == "FAILED" and set(states[:-1]) <= {"IN_PROGRESS"}
    assert _props(final)["completedAt"] is not None


async def test_folders_multibranch_and_matrix(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    folder_job = home.job("team/backend/api")
    branches = home.multibranch("shop", ["main", "feature/login"])
    matrix = home.job("mx", kind="matrix", axes={"OS": ["linux", "windows"]})
    daemon = await in_process(_settings(tmp_path, home))
    compass = daemon.transport
    folder_job.start().finish("SUCCESS")
    branches["feature/login"].start().finish("FAILURE")
    branches["main"].start().finish("SUCCESS")
    matrix.start().finish("SUCCESS")
    api = await _terminal(compass, "team/backend/api#1")
    assert api["event"]["build"]["url"] == "https://jenkins.example.com/job/team/job/backend/job/api/1/"
    feature = await _terminal(compass, "shop/feature/login#1")
    assert _props(feature)["state"] == "FAILED"
    assert _props(feature)["pipeline"]["displayName"] == "shop/feature/login"
    assert _props(await _terminal(compass, "shop/main#1"))["state"] == "SUCCESSFUL"
    assert _props(await _terminal(compass, "mx#1"))["state"] == "SUCCESSFUL"
    await daemon.settled()
    assert not [p for p in compass.builds() if p.startswith("mx/")], (
        "matrix configurations are off by default"
    )


async def test_matrix_configurations_when_enabled(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    matrix = home.job("mx", kind="matrix", axes={"OS": ["linux", "windows"]})
    matrix.start().finish("SUCCESS")  # creates the configuration jobs, before the daemon's first start
    daemon = await in_process(_settings(tmp_path, home, matrix_configurations=True))
    compass = daemon.transport
    matrix.start().finish("FAILURE")
    await until(
        "the matrix run", lambda: {"mx#2", "mx/OS=linux#2", "mx/OS=windows#2"} <= set(compass.builds())
    )
    assert _props(compass.builds()["mx/OS=linux#2"][-1])["state"] == "FAILED"
    assert "mx#1" not in compass.builds(), "history from before the first start is not sent"


async def test_first_start_reports_only_runs_in_progress(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("busy")
    for result in ("SUCCESS", "FAILURE", "SUCCESS"):
        job.start(start_ms=int(time.time() * 1000) - 3_600_000).finish(result, duration_ms=1000)
    pipe = home.job("pipe", kind="pipeline")
    pipe.start().finish("SUCCESS")
    running_pipe = pipe.start()
    running_free = job.start()
    running_free.log("compiling")
    daemon = await in_process(_settings(tmp_path, home))
    compass = daemon.transport
    await until("the runs in progress", lambda: {"busy#4", "pipe#2"} <= set(compass.builds()))
    await daemon.settled()
    assert sorted(compass.builds()) == ["busy#4", "pipe#2"]
    assert _states(compass, "busy#4") == ["IN_PROGRESS"]
    running_free.finish("SUCCESS")
    running_pipe.finish("ABORTED")
    assert _props(await _terminal(compass, "busy#4"))["state"] == "SUCCESSFUL"
    assert _props(await _terminal(compass, "pipe#2"))["state"] == "CANCELLED"


async def test_restart_in_the_middle_misses_nothing_and_resends_nothing(
    tmp_path: Path, home: JenkinsHome
) -> None:
    job = home.job("app")
    settings = _settings(tmp_path, home)
    compass = ScriptedTransport()
    async with running(settings, compass):
        job.start().finish("SUCCESS")
        await _terminal(compass, "app#1")
        long_run = job.start()
        await until("app#2 in progress", lambda: _states(compass, "app#2") == ["IN_PROGRESS"])
    long_run.finish("FAILURE")  # finishes while the daemon is down
    job.start().finish("SUCCESS")  # starts and finishes while down
    still_running = job.start()  # starts while down, still running at restart
    async with running(settings, compass):
        assert _props(await _terminal(compass, "app#2"))["state"] == "FAILED"
        assert _props(await _terminal(compass, "app#3"))["state"] == "SUCCESSFUL"
        await until("app#4 in progress", lambda: _states(compass, "app#4") == ["IN_PROGRESS"])
        still_running.finish("SUCCESS")
        await _terminal(compass, "app#4")
    for pipeline_id, events in compass.builds().items():
        states = [_props(e)["state"] for e in events]
        assert len(states) == len(set(states)), f"{pipeline_id}: an event was sent twice: {states}"
    assert _states(compass, "app#2") == ["IN_PROGRESS", "FAILED"]
    assert _states(compass, "app#3") == ["SUCCESSFUL"]
    seqs = [e["event"]["build"]["updateSequenceNumber"] for e in compass.accepted]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_discarded_builds_and_atomic_temp_files_send_nothing(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("app")
    daemon = await in_process(_settings(tmp_path, home))
    for _ in range(3):
        job.start().finish("SUCCESS")
    for n in (1, 2, 3):
        await _terminal(daemon.transport, f"app#{n}")
    before = len(daemon.transport.bodies)
    job.discard(1)
    job.discard(2)
    (job.builds_dir / "3" / "build.xml-atomic123tmp").write_text("<build")
    await daemon.settled()  # reconcile scans since: they found nothing to send either
    assert len(daemon.transport.bodies) == before


async def test_recreated_job_reusing_a_number_gets_a_distinct_pipeline_id(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("app")
    daemon = await in_process(_settings(tmp_path, home))
    compass = daemon.transport
    job.start().finish("SUCCESS")
    await _terminal(compass, "app#1")
    home.delete_job("app")
    await until("the job gone", lambda: daemon.jobs() == 0)
    job = home.job("app")
    job.start(start_ms=int(time.time() * 1000) + 5000).finish("FAILURE")
    await until("app#1.2", lambda: "app#1.2" in compass.builds())
    assert _props(await _terminal(compass, "app#1.2"))["state"] == "FAILED"
    assert "FAILED" not in _states(compass, "app#1"), "the new run overwrote the old one"


async def test_new_jobs_are_noticed_without_watching_their_containers(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    home.job("app").start().finish("SUCCESS")
    home.job("team/api").start().finish("SUCCESS")
    in_progress = home.job("team/web").start()
    # no reconcile scan to fall back on: only the containers' stat can find the new jobs
    daemon = await in_process(_settings(tmp_path, home, reconcile_interval="1h"))
    compass = daemon.transport
    ready = daemon.service.summary()
    assert "3 job(s)" in ready and "1 run(s) in progress" in ready
    assert "4 watch(es)" in ready, "one per job and one per running build, nothing for jobs/ or team/jobs/"
    started = time.monotonic()
    home.job("fresh").start().finish("FAILURE")  # in jobs/
    home.job("team/new").start().finish("SUCCESS")  # in a folder's jobs/
    assert _props(await _terminal(compass, "fresh#1"))["state"] == "FAILED"
    assert _props(await _terminal(compass, "team/new#1"))["state"] == "SUCCESSFUL"
    assert time.monotonic() - started < 8
    in_progress.finish("SUCCESS")
    assert _props(await _terminal(compass, "team/web#1"))["state"] == "SUCCESSFUL"


async def test_a_symlink_loop_in_a_live_home_adds_no_phantom_job(
    tmp_path: Path, home: JenkinsHome, in_process: StartService, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("app", "team/api"):
        job = home.job(name)
        for _ in range(3):
            job.start().finish("SUCCESS")  # history: never sent
    jobs = home.root / "jobs"
    (jobs / "loop").mkdir()
    (jobs / "loop" / "jobs").symlink_to("../../jobs")  # a folder whose jobs are the home's: at the start
    daemon: InProcess = await in_process(_settings(tmp_path, home, reconcile_interval="500ms"))
    ready = daemon.service.summary()
    assert "2 job(s)" in ready and "2 watch(es)" in ready, ready  # app and team/api, nothing phantom

    (jobs / "team" / "jobs" / "up").symlink_to("../../../jobs")  # a job that is the home: while it runs
    await until("the new loop noticed", lambda: "team/jobs/up leads to" in caplog.text)
    home.job("app").start().finish("FAILURE")
    final = await _terminal(daemon.transport, "app#4")
    assert _props(final)["state"] == "FAILED"
    await daemon.settled()  # anything phantom found with the loop would have been sent by now
    assert set(daemon.transport.builds()) == {"app#4"}, sorted(daemon.transport.builds())
    assert caplog.text.count("already read") == 2, "each loop said once"


async def test_polling_mode(tmp_path: Path, home: JenkinsHome, in_process: StartService) -> None:
    job = home.job("nfs/app")
    daemon = await in_process(_settings(tmp_path, home, watch="polling", poll_interval="200ms"))
    compass = daemon.transport
    assert "0 watch(es)" in daemon.service.summary()
    run = job.start()
    await until("nfs/app#1 in progress", lambda: _states(compass, "nfs/app#1") == ["IN_PROGRESS"])
    run.finish("SUCCESS")
    assert _props(await _terminal(compass, "nfs/app#1"))["state"] == "SUCCESSFUL"
    home.job("nfs/new-job").start().finish("FAILURE")  # a job created while running
    assert _props(await _terminal(compass, "nfs/new-job#1"))["state"] == "FAILED"


async def test_custom_builds_dir(tmp_path: Path, in_process: StartService) -> None:
    home = JenkinsHome(tmp_path / "jenkins", builds_dir="${JENKINS_HOME}/builds/${ITEM_FULL_NAME}")
    job = home.job("folder/app")
    job.start().finish("SUCCESS")
    assert job.builds_dir == home.root / "builds" / "folder" / "app"
    daemon = await in_process(_settings(tmp_path, home))
    job.start().finish("FAILURE")
    assert _props(await _terminal(daemon.transport, "folder/app#2"))["state"] == "FAILED"
    assert "folder/app#1" not in daemon.transport.builds()


async def test_absurd_numbers_in_a_record_never_crash_the_daemon(
    tmp_path: Path, home: JenkinsHome, in_process: StartService
) -> None:
    job = home.job("app")
    daemon = await in_process(_settings(tmp_path, home))
    job.start().finish("SUCCESS", duration_ms=999_999_999_999_999_999)
    job.start().finish("FAILURE")
    final = await _terminal(daemon.transport, "app#1")
    assert _props(final)["completedAt"].startswith("9999-12-31"), "clamped to the last representable time"
    assert _props(await _terminal(daemon.transport, "app#2"))["state"] == "FAILED"
    assert daemon.service.health.healthy() == (True, "ok")  # and the main loop ends cleanly at teardown
