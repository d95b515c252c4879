"""Any CI's log and result files, end to end: rotation, truncation, restarts and kills lose nothing."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Daemon, drained, make_config, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]

RULES = {
    "start": r"^(?P<time>\S+) START job=(?P<name>\S+) id=(?P<id>\S+)$",
    "finish": r"^(?P<time>\S+) FINISH job=(?P<name>\S+) id=(?P<id>\S+) result=(?P<result>\S+)$",
    "pipeline": "nightly-{name}",
    "time_format": "iso",
    "result_map": {"ok": "SUCCESSFUL", "broken": "FAILED"},
}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _config(tmp: Path, home: JenkinsHome, compass: FakeCompass, *sources: dict[str, Any]) -> dict[str, Any]:
    cfg = make_config(tmp, home, compass)
    cfg["sources"] = list(sources)
    return cfg


def _log_source(logs: Path, **extra: Any) -> dict[str, Any]:
    return {
        "type": "log",
        "name": "cron",
        "paths": [str(logs / "*.log"), str(logs / "*.log.1")],
        "rules": RULES,
        **extra,
    }


def _props(e: dict[str, Any]) -> dict[str, Any]:
    return e["event"]["build"]["buildProperties"]  # type: ignore[no-any-return]


def _terminal(compass: FakeCompass) -> dict[str, set[int]]:
    """pipelineId -> distinct sequence numbers of its terminal events (one each: nothing counted twice)."""
    out: dict[str, set[int]] = {}
    for e in compass.events:
        if _props(e)["state"] != "IN_PROGRESS":
            out.setdefault(_props(e)["pipeline"]["pipelineId"], set()).add(
                e["event"]["build"]["updateSequenceNumber"]
            )
    return out


class CronLog:
    """Writes start/finish lines as a shell-driven scheduler would, and rotates the file like logrotate."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.runs = 0

    def write(self, line: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(line + "\n")

    def run(self, name: str, result: str = "ok") -> str:
        self.runs += 1
        run_id = str(self.runs)
        self.write(f"{_now()} START job={name} id={run_id}")
        self.write(f"{_now()} FINISH job={name} id={run_id} result={result}")
        return f"nightly-{name}#{run_id}"

    def rotate_create(self) -> None:
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self.path.touch()

    def rotate_copytruncate(self) -> None:
        shutil.copyfile(self.path, self.path.with_name(self.path.name + ".1"))
        with open(self.path, "r+") as fh:
            fh.truncate(0)

    def truncate(self) -> None:
        with open(self.path, "r+") as fh:
            fh.truncate(0)


def test_log_rotation_truncation_and_restart_count_every_run_once(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "logs"
    cron = CronLog(logs / "cron.log")
    cron.write("an old line from before buildtail: START job=old id=0")  # history: skipped at the first start
    daemon = daemon_factory(_config(tmp_path, home, compass, _log_source(logs)))
    expected = [cron.run("backup"), cron.run("backup", "broken")]
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)))
    # each rotation happens once what was written before it has been read, as with a real logrotate
    # schedule; the lines written right before a rotation are the ones that must not be lost
    cron.rotate_create()
    expected += [cron.run("report")]
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=20)
    (logs / "cron.log.1").unlink()  # logrotate's next cycle: the oldest generation goes away
    cron.rotate_copytruncate()
    expected += [cron.run("report", "broken")]
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=20)
    cron.truncate()
    expected += [cron.run("cleanup")]
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=20)
    assert daemon.stop() == 0
    pending = CronLog(logs / "cron.log")
    pending.runs = cron.runs
    half = pending.run("while-down")  # written while the daemon is down
    expected.append(half)
    daemon.start()
    expected.append(pending.run("after-restart"))
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=20)
    drained(daemon)
    terminal = _terminal(compass)
    assert sorted(terminal) == sorted(expected), "every run once, nothing from before the first start"
    assert all(len(seqs) == 1 for seqs in terminal.values()), f"a line was counted twice: {terminal}"
    states = {_props(e)["pipeline"]["pipelineId"]: _props(e)["state"] for e in compass.events}
    assert states["nightly-backup#2"] == "FAILED" and states["nightly-backup#1"] == "SUCCESSFUL"
    assert compass.invalid == []
    assert daemon.stop() == 0


def test_kill_9_between_reading_and_queuing_loses_and_doubles_nothing(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "logs"
    cron = CronLog(logs / "cron.log")
    cron.path.touch()
    daemon = daemon_factory(_config(tmp_path, home, compass, _log_source(logs)))
    rng = random.Random(7)
    expected: list[str] = []
    for _ in range(8):
        for _ in range(rng.randint(5, 40)):
            expected.append(cron.run(rng.choice(["a", "b", "c"]), rng.choice(["ok", "broken"])))
        time.sleep(rng.uniform(0.0, 0.3))
        daemon.kill()
        daemon.start()
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=60)
    terminal = _terminal(compass)
    assert sorted(terminal) == sorted(expected)
    assert all(len(seqs) == 1 for seqs in terminal.values()), "a line was counted twice"
    assert daemon.stop() == 0


def test_bad_input_is_reported_and_survived(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "loop").symlink_to(logs)  # a symlink loop under a ** glob
    source = _log_source(logs, max_line_bytes=1 << 20)
    source["paths"] = [str(logs / "**" / "*.log")]
    daemon = daemon_factory(_config(tmp_path, home, compass, source))
    cron = CronLog(logs / "cron.log")
    cron.path.write_bytes(b"\x00\xff\xfe garbage \xc3\x28 invalid utf-8\n" + os.urandom(4096) + b"\n")
    with open(cron.path, "ab") as fh:
        fh.write(b"x" * (50 << 20) + b"\n")  # a 50 MB line
    expected = [cron.run("after-the-long-line")]
    vanishing = logs / "gone.log"
    vanishing.write_text("START job=x\n")
    vanishing.unlink()
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=30)
    assert daemon.alive()
    assert "longer than" in daemon.stderr
    assert daemon.stop() == 0


def test_result_files_json_yaml_junit_and_in_progress(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    source = {
        "type": "result_file",
        "name": "scripts",
        "paths": [str(results / "*.json"), str(results / "*.yaml")],
    }
    daemon = daemon_factory(_config(tmp_path, home, compass, source))
    (results / "reports").mkdir()
    (results / "reports" / "junit.xml").write_text(
        '<testsuite name="t" tests="5" failures="1" errors="0" skipped="1">'
        '<testcase name="a"/><testcase name="b"><failure message="x"/></testcase></testsuite>'
    )
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    (results / "deploy.json").write_text(
        json.dumps(
            {
                "pipeline": "deploy",
                "id": 41,
                "state": "IN_PROGRESS",
                "started_at": started,
                "url": "https://ci.example.com/deploy/41",
            }
        )
    )
    compass.wait_for(lambda events: any(_props(e)["pipeline"]["pipelineId"] == "deploy#41" for e in events))
    (results / "deploy.json").write_text(
        json.dumps(
            {
                "pipeline": "deploy",
                "id": 41,
                "result": "success",
                "started_at": started,
                "completed_at": _now(),
                "url": "https://ci.example.com/deploy/41",
                "junit": ["reports/*.xml"],
            }
        )
    )
    (results / "backup.yaml").write_text(
        f"pipeline: backup\nid: '2026-11-26.1'\nstate: FAILED\n"
        f"started_at: {started}\ncompleted_at: {_now()}\n"
    )
    (results / "broken.json").write_text("{not json")
    compass.wait_for(lambda _: {"deploy#41", "backup#2026-11-26.1"} <= set(_terminal(compass)))
    deploy = [e for e in compass.events if _props(e)["pipeline"]["pipelineId"] == "deploy#41"]
    assert [_props(e)["state"] for e in deploy] == ["IN_PROGRESS", "SUCCESSFUL"]
    assert deploy[-1]["event"]["build"]["url"] == "https://ci.example.com/deploy/41"
    assert "3 passed, 1 failed" in deploy[-1]["event"]["build"]["description"]
    # an unreadable file is reported once it has been left alone for a moment (a file caught while
    # being written is not a problem): at the next periodic look, 10 s with inotify
    wait_until(lambda: "broken.json" in daemon.stderr, timeout=20, what="the bad file reported")
    assert daemon.stop() == 0
    daemon.start()
    drained(daemon)
    assert len(_terminal(compass)) == 2 and all(len(s) == 1 for s in _terminal(compass).values()), (
        "remembered"
    )
    assert daemon.stop() == 0


def test_presets_cruisecontrol_and_gocd(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    cc = tmp_path / "cruisecontrol"
    (cc / "logs" / "project1").mkdir(parents=True)
    go = tmp_path / "go-server"
    (go / "artifacts" / "pipelines").mkdir(parents=True)
    daemon = daemon_factory(
        _config(
            tmp_path,
            home,
            compass,
            {"preset": "cruisecontrol", "home": str(cc)},
            {"preset": "gocd", "home": str(go)},
        )
    )
    stamp = time.strftime("%Y%m%d%H%M%S")

    def cc_log(label: str | None, error: str | None) -> bytes:
        err = f' error="{error}"' if error else ""
        return (
            f'<cruisecontrol><info><property name="projectname" value="project1"/>'
            f'<property name="label" value="{label or ""}"/><property name="cctimestamp" value="{stamp}"/>'
            f'</info><build time="1 minute 5 seconds"{err}></build></cruisecontrol>'
        ).encode()

    (cc / "logs" / "project1" / f"log{stamp}Lbuild.7.xml").write_bytes(cc_log("build.7", None))
    later = time.strftime("%Y%m%d%H%M%S", time.localtime(time.time() + 1))
    with gzip.open(cc / "logs" / "project1" / f"log{later}.xml.gz", "wb") as fh:
        fh.write(cc_log(None, "compile failed"))
    job_dir = go / "artifacts" / "pipelines" / "shop" / "12" / "build" / "1" / "unit" / "cruise-output"
    job_dir.mkdir(parents=True)
    tmp = tmp_path / "console.tmp"
    t0 = time.time() - 120
    at = [time.strftime("%H:%M:%S", time.localtime(t0 + k)) + ".250" for k in (0, 1, 30, 31)]
    day = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t0))
    tmp.write_text(
        f"{at[0]} [go] Job Started: {day}\n\n{at[0]} [go] Start to prepare shop/12/build/1/unit on a [/w]\n"
        f"{at[1]} [go] Current job status: passed.\n\n{at[1]} [go] Start to execute task: make.\n"
        f"{at[2]} [go] Current job status: failed.\n\n"
        f"{at[3]} [go] Job completed shop/12/build/1/unit on a [/w]\n"
    )
    os.replace(tmp, job_dir / "console.log")  # GoCD moves the finished console log into place
    compass.wait_for(lambda _: len(_terminal(compass)) == 3, timeout=20)
    by_id = {_props(e)["pipeline"]["pipelineId"]: _props(e) for e in compass.events}
    assert by_id["project1#build.7"]["state"] == "SUCCESSFUL"
    assert by_id[f"project1#{later}"]["state"] == "FAILED"
    gocd = by_id["shop/build/unit#12.1"]
    assert gocd["state"] == "FAILED"  # the status line before each task said passed; the last one failed
    assert (gocd["startedAt"], gocd["completedAt"]) == (_iso(t0, 0.25), _iso(t0 + 31, 0.25))
    assert daemon.stop() == 0


def _iso(epoch: float, fraction: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(epoch))) + f".{int(fraction * 1000):03d}Z"


def _cc_log(directory: Path, when: float, label: str, error: str | None = None) -> Path:
    """A CruiseControl log as Log.writeLogFile names it: the build's start, ``L<label>`` on success only.

    The content's label is the one the project held: after a failure, the label the next build tries.
    """
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(when))
    err = f' error="{error}"' if error else ""
    path = directory / (f"log{stamp}L{label}.xml" if error is None else f"log{stamp}.xml")
    path.write_text(
        f'<cruisecontrol><info><property name="projectname" value="project1"/>'
        f'<property name="cctimestamp" value="{stamp}"/><property name="label" value="{label}"/></info>'
        f'<build time="1 minute 5 seconds"{err}/></cruisecontrol>'
    )
    os.utime(path, (when + 65, when + 65))  # written when the build ended
    return path


def test_a_cruisecontrol_log_moved_into_place_with_an_old_time_is_news(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "cruisecontrol" / "logs" / "project1"
    logs.mkdir(parents=True)
    staging = tmp_path / "staging"  # where CruiseControl, rsync or a restore writes before the move
    staging.mkdir()
    days_ago = time.time() - 3 * 86400
    _cc_log(logs, days_ago, "7")  # there at the first start: history, never sent
    daemon = daemon_factory(
        _config(tmp_path, home, compass, {"preset": "cruisecontrol", "home": str(tmp_path / "cruisecontrol")})
    )
    success = _cc_log(staging, days_ago + 600, "8")
    failure = _cc_log(staging, days_ago + 1200, "9", "compile failed")  # logged with the next label
    for log in (success, failure):
        os.replace(log, logs / log.name)  # a move keeps the old modification time
    failure_id = f"project1#{failure.name[3:17]}"
    compass.wait_for(lambda _: {"project1#8", failure_id} <= set(_terminal(compass)), timeout=20)
    assert daemon.stop() == 0
    fixed = _cc_log(staging, days_ago + 1800, "9")  # the success after the failure: the same label
    os.replace(fixed, logs / fixed.name)  # moved in while the daemon is down
    daemon.start()
    compass.wait_for(lambda _: "project1#9" in _terminal(compass), timeout=20)
    drained(daemon)
    terminal = _terminal(compass)
    assert sorted(terminal) == sorted(["project1#8", failure_id, "project1#9"]), "history stays out"
    assert all(len(seqs) == 1 for seqs in terminal.values()), f"sent twice: {terminal}"
    by_id = {_props(e)["pipeline"]["pipelineId"]: _props(e) for e in compass.events}
    assert by_id[failure_id]["state"] == "FAILED" and by_id["project1#9"]["state"] == "SUCCESSFUL"
    assert by_id["project1#8"]["startedAt"] == _iso(days_ago + 600, 0)
    assert by_id["project1#8"]["completedAt"] == _iso(days_ago + 665, 0)
    assert daemon.stop() == 0


def test_a_log_source_without_files_at_its_first_start_reads_later_files_from_the_start(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    daemon = daemon_factory(_config(tmp_path, home, compass, _log_source(logs)))
    assert daemon.stop() == 0  # the first start saw no file at all
    cron = CronLog(logs / "cron.log")
    expected = [cron.run("backup")]  # written while the daemon is down
    daemon.start()
    compass.wait_for(lambda _: set(expected) <= set(_terminal(compass)), timeout=10)
    assert daemon.stop() == 0


def _open_descriptors(pid: int, path: Path) -> int:
    """How many of the process's file descriptors point at ``path``."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_reload_that_changes_the_file_sources_releases_the_old_descriptors(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs = tmp_path / "logs"
    cron = CronLog(logs / "cron.log")
    cron.write(f"{_now()} boot")  # the file exists at the first start: its content is history
    cfg = _config(tmp_path, home, compass, _log_source(logs, poll_interval="1s"))
    daemon = daemon_factory(cfg)
    cron.run("backup")
    wait_until(lambda: "nightly-backup#1" in _terminal(compass), what="the first run")
    assert daemon.proc is not None
    assert _open_descriptors(daemon.proc.pid, cron.path) == 1
    for reloads, interval in enumerate(("2s", "3s", "1s"), start=1):
        cfg["sources"] = [_log_source(logs, poll_interval=interval)]
        daemon.config_path.write_text(json.dumps(cfg))
        daemon.proc.send_signal(signal.SIGHUP)

        def reloaded(n: int = reloads) -> bool:
            return daemon.stderr.count("configuration reloaded") == n

        def arrived(n: int = reloads) -> bool:
            return f"nightly-backup#{n + 1}" in _terminal(compass)

        wait_until(reloaded, what="the reload")
        cron.run("backup")
        wait_until(arrived, what="a run after the reload")
        assert _open_descriptors(daemon.proc.pid, cron.path) == 1, "the replaced source's files stay open"
    assert sorted(_terminal(compass)) == [f"nightly-backup#{n}" for n in range(1, 5)]


def test_json_log_lines_name_the_source_path_and_run(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    logs, results = tmp_path / "logs", tmp_path / "results"
    logs.mkdir()
    results.mkdir()
    scripts = {"type": "result_file", "name": "scripts", "paths": [str(results / "*.json")]}
    cfg = _config(tmp_path, home, compass, _log_source(logs), scripts)
    cfg["log_format"] = "json"
    daemon = daemon_factory(cfg)
    fifo, second = logs / "pipe.log", logs / "pipe2.log"
    os.mkfifo(fifo)  # matches the pattern but is no file to read
    os.mkfifo(second)  # the same problem of another file is news too
    # an unreadable result file written a while ago (not one still being written), moved into place
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    os.utime(broken, (time.time() - 60, time.time() - 60))
    os.replace(broken, results / "broken.json")
    run = CronLog(logs / "cron.log").run("json")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in daemon.stderr.splitlines() if line.startswith("{")]

    def about(what: str) -> dict[str, Any] | None:
        return next((e for e in lines() if what in e["msg"]), None)

    def fifos() -> set[str | None]:
        return {e.get("path") for e in lines() if "not a regular file" in e["msg"]}

    wait_until(lambda: about(f"queued {run} SUCCESSFUL") is not None, timeout=20, what="the run queued")
    wait_until(lambda: fifos() == {str(fifo), str(second)}, timeout=20, what="both FIFOs reported")
    wait_until(lambda: about("broken.json") is not None, timeout=20, what="the bad file reported")
    queued = about(f"queued {run} SUCCESSFUL")
    assert queued is not None and (queued["source"], queued["run"]) == ("cron", run)
    fifo_line = about("not a regular file")
    assert fifo_line is not None and fifo_line["source"] == "cron"
    bad = about("broken.json")
    assert bad is not None and (bad["source"], bad["path"]) == ("scripts", str(results / "broken.json"))
    assert all(line.startswith("{") for line in daemon.stderr.splitlines() if line)
    assert daemon.stop() == 0
