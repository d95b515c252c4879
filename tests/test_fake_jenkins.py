"""tools/fake_jenkins writes build records the way Jenkins does."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from tools.fake_jenkins import JenkinsHome, build_example, mangle_branch_name

REPO = Path(__file__).resolve().parents[1]
START = 1_795_161_600_000  # 2026-11-20T08:00:00Z


def parse(path: Path) -> ET.Element:
    return ET.fromstring(path.read_bytes())


def child(root: ET.Element, tag: str) -> str | None:
    """Text of a DIRECT child only (never .//tag)."""
    el = root.find(tag)
    return None if el is None else (el.text or "")


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "atomic" in p.name and p.name.endswith("tmp")]


def log_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture
def home(tmp_path: Path) -> JenkinsHome:
    return JenkinsHome(tmp_path / "home")


# -- jobs -------------------------------------------------------------------------------------------


def test_job_layout(home: JenkinsHome) -> None:
    job = home.job("hello")
    assert job.dir == home.root / "jobs" / "hello"
    assert job.builds_dir == job.dir / "builds"
    assert (job.dir / "nextBuildNumber").read_text() == "1\n"
    assert (job.builds_dir / "legacyIds").read_bytes() == b""
    assert parse(job.dir / "config.xml").tag == "project"
    assert (job.dir / "config.xml").read_text().startswith("<?xml version='1.1' encoding='UTF-8'?>\n")
    assert not (home.root / "config.xml").exists()


@pytest.mark.parametrize(
    ("kind", "tag"), [("freestyle", "project"), ("pipeline", "flow-definition"), ("matrix", "matrix-project")]
)
def test_job_config_root_tag(home: JenkinsHome, kind: str, tag: str) -> None:
    assert parse(home.job("j", kind).dir / "config.xml").tag == tag


def test_folders(home: JenkinsHome) -> None:
    job = home.job("folder/sub/app", "pipeline", display_name="The App")
    assert job.full_name == "folder/sub/app"
    assert job.dir == home.root / "jobs/folder/jobs/sub/jobs/app"
    for folder in (home.root / "jobs/folder", home.root / "jobs/folder/jobs/sub"):
        assert parse(folder / "config.xml").tag == "com.cloudbees.hudson.plugins.folder.Folder"
    assert child(parse(job.dir / "config.xml"), "displayName") == "The App"


def test_job_is_idempotent(home: JenkinsHome) -> None:
    job = home.job("team/api", "pipeline")
    job.start(start_ms=START).finish(duration_ms=10)
    again = home.job("team/api")  # kind comes from the existing config.xml
    assert again.kind == "pipeline" and again.dir == job.dir
    assert (job.dir / "nextBuildNumber").read_text() == "2\n"
    assert again.start(start_ms=START + 1000).number == 2


def test_invalid_kind(home: JenkinsHome) -> None:
    with pytest.raises(ValueError):
        home.job("x", "maven")


# -- freestyle ----------------------------------------------------------------------------------------


def test_freestyle_running_has_no_build_xml(home: JenkinsHome) -> None:
    job = home.job("hello")
    run = job.start(start_ms=START)
    assert run.number == 1 and run.dir == job.builds_dir / "1"
    assert (job.dir / "nextBuildNumber").read_text() == "2\n"
    assert not (run.dir / "build.xml").exists()
    lines = log_lines(run.dir / "log")
    assert lines[0].startswith(b"Started by user \x1b[8mha:////4")
    assert lines[0].endswith(b"\x1b[0madmin")
    run.log("compiling")
    assert log_lines(run.dir / "log")[-1] == b"compiling"
    assert not any(b"Finished:" in line for line in log_lines(run.dir / "log"))
    assert leftovers(home.root) == []


def test_freestyle_finish(home: JenkinsHome) -> None:
    job = home.job("hello")
    run = job.start(start_ms=START, cause="Started by timer")
    run.log("step")
    run.finish("FAILURE", duration_ms=4321, display_name="nice name", description="desc <b>", commit="a" * 40)
    lines = log_lines(run.dir / "log")
    assert lines[0] == b"Started by timer"
    assert lines[-1] == b"Finished: FAILURE"
    assert leftovers(home.root) == []
    root = parse(run.dir / "build.xml")
    assert (run.dir / "build.xml").read_text().startswith("<?xml version='1.1' encoding='UTF-8'?>\n")
    assert root.tag == "build"
    assert child(root, "result") == "FAILURE"
    assert child(root, "duration") == "4321"
    assert child(root, "startTime") == str(START)
    assert child(root, "timestamp") == str(START - 4)
    assert child(root, "number") is None
    assert child(root, "displayName") == "nice name"
    assert child(root, "description") == "desc <b>"
    assert child(root, "queueId") is not None
    assert (
        root.find(
            "actions/hudson.model.CauseAction/causeBag/entry/hudson.triggers.TimerTrigger_-TimerTriggerCause"
        )
        is not None
    )
    shas = [
        e.text
        for e in root.iterfind(
            "actions/hudson.plugins.git.util.BuildData/buildsByBranchName/entry/"
            "hudson.plugins.git.util.Build/marked/sha1"
        )
    ]
    assert shas == ["a" * 40]
    permalinks = dict(line.split(" ") for line in (job.builds_dir / "permalinks").read_text().splitlines())
    assert permalinks["lastCompletedBuild"] == "1"
    assert permalinks["lastFailedBuild"] == "1"
    assert permalinks["lastSuccessfulBuild"] == "-1"


def test_default_duration_is_now_minus_start(home: JenkinsHome) -> None:
    run = home.job("hello").start()
    run.finish()
    root = parse(run.dir / "build.xml")
    assert 0 <= int(child(root, "duration") or "-1") < 60_000


def test_user_cause_in_build_xml(home: JenkinsHome) -> None:
    run = home.job("hello").start(start_ms=START, cause="Started by user alice")
    run.finish(duration_ms=1)
    root = parse(run.dir / "build.xml")
    user = root.find("actions/hudson.model.CauseAction/causeBag/entry/hudson.model.Cause_-UserIdCause/userId")
    assert user is not None and user.text == "alice"


def test_permalinks_track_results(home: JenkinsHome) -> None:
    job = home.job("hello")
    for result in ["SUCCESS", "FAILURE", "UNSTABLE", "SUCCESS"]:
        job.start(start_ms=START).finish(result, duration_ms=1)
    text = (job.builds_dir / "permalinks").read_text()
    links = dict(line.split(" ") for line in text.splitlines())
    assert links == {
        "lastBuild": "4",
        "lastCompletedBuild": "4",
        "lastFailedBuild": "2",
        "lastStableBuild": "4",
        "lastSuccessfulBuild": "4",
        "lastUnstableBuild": "3",
        "lastUnsuccessfulBuild": "3",
    }


def test_aborted_timed_out_order(home: JenkinsHome) -> None:
    run = home.job("nightly").start(start_ms=START)
    run.finish("ABORTED", duration_ms=180_000, timed_out=True)
    lines = [line.decode() for line in log_lines(run.dir / "log")]
    assert lines[-3:] == [
        "Build timed out (after 3 minutes). Marking the build as aborted.",
        "Build was aborted",
        "Finished: ABORTED",
    ]
    root = parse(run.dir / "build.xml")
    assert child(root, "result") == "ABORTED"
    assert root.find("actions/jenkins.model.InterruptedBuildAction") is not None


def test_finish_twice_or_bad_result(home: JenkinsHome) -> None:
    run = home.job("hello").start(start_ms=START)
    with pytest.raises(ValueError):
        run.finish("PASSED")
    run.finish(duration_ms=1)
    with pytest.raises(RuntimeError):
        run.finish(duration_ms=1)


def test_crash_leaves_log_only(home: JenkinsHome) -> None:
    run = home.job("hello").start(start_ms=START)
    run.log("half way")
    run.crash()
    assert sorted(p.name for p in run.dir.iterdir()) == ["log"]


def test_finish_writes_build_xml_via_rename(home: JenkinsHome, monkeypatch: pytest.MonkeyPatch) -> None:
    run = home.job("hello").start(start_ms=START)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    run.finish(duration_ms=5)
    names = [dst for _, dst in renames]
    assert names == ["permalinks", "build.xml"]  # permalinks first, build.xml last
    src = renames[-1][0]
    assert src.startswith("build.xml-atomic") and src.endswith("tmp")
    assert src[len("build.xml-atomic") : -len("tmp")].isdigit()


# -- pipeline ------------------------------------------------------------------------------------------


def test_pipeline_running_build_xml(home: JenkinsHome) -> None:
    run = home.job("team/api", "pipeline").start(start_ms=START)
    text = (run.dir / "build.xml").read_text()
    assert text.startswith("<?xml version='1.1' encoding='UTF-8'?>\n")
    root = ET.fromstring(text)
    assert root.tag == "flow-build" and root.get("plugin", "").startswith("workflow-job@")
    assert child(root, "result") is None  # no direct <result> while running
    assert child(root, "duration") == "0"
    assert child(root, "completed") == "false"
    assert child(root, "charset") == "UTF-8"
    assert child(root, "keepLog") == "false"
    assert child(root, "startTime") == str(START)
    assert child(root, "timestamp") == str(START - 4)
    execution = root.find("execution")
    assert execution is not None
    assert execution.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowExecution"
    assert child(execution, "result") == "SUCCESS"
    assert child(execution, "done") == "false"
    lines = log_lines(run.dir / "log")
    assert lines[0].startswith(b"Started by user ")
    assert lines[1] == b"Running in Durability level: MAX_SURVIVABILITY"
    assert leftovers(home.root) == []


def test_pipeline_checkpoint_adds_action(home: JenkinsHome) -> None:
    run = home.job("p", "pipeline").start(start_ms=START)
    before = len(parse(run.dir / "build.xml").findall("actions/*"))
    inode = (run.dir / "build.xml").stat().st_ino
    run.checkpoint()
    root = parse(run.dir / "build.xml")
    assert len(root.findall("actions/*")) == before + 1
    assert child(root, "completed") == "false" and child(root, "result") is None
    assert (run.dir / "build.xml").stat().st_ino != inode  # atomic: a new file was renamed in
    assert leftovers(home.root) == []


def test_pipeline_performance_optimized_rewrites_in_place(home: JenkinsHome) -> None:
    run = home.job("p", "pipeline").start(start_ms=START, durability="PERFORMANCE_OPTIMIZED")
    text = (run.dir / "build.xml").read_text()
    assert text.startswith('<?xml version="1.1" encoding="UTF-8"?>\n')
    inode = (run.dir / "build.xml").stat().st_ino
    run.checkpoint()
    assert (run.dir / "build.xml").stat().st_ino == inode  # truncated and rewritten in place
    assert b"Running in Durability level: PERFORMANCE_OPTIMIZED" in (run.dir / "log").read_bytes()
    run.finish(duration_ms=9)
    assert (run.dir / "build.xml").read_text().startswith("<?xml version='1.1' encoding='UTF-8'?>\n")


def test_pipeline_finish(home: JenkinsHome) -> None:
    run = home.job("team/api", "pipeline").start(start_ms=START)
    run.checkpoint()
    run.finish("UNSTABLE", duration_ms=2500)
    assert log_lines(run.dir / "log")[-1] == b"Finished: UNSTABLE"
    root = parse(run.dir / "build.xml")
    assert root.tag == "flow-build"
    assert child(root, "result") == "UNSTABLE"
    assert child(root, "duration") == "2500"
    assert child(root, "completed") == "true"
    execution = root.find("execution")
    assert execution is not None
    assert child(execution, "done") == "true"
    assert child(execution, "result") == "UNSTABLE"
    assert leftovers(home.root) == []


# -- matrix ----------------------------------------------------------------------------------------------


def test_matrix(home: JenkinsHome) -> None:
    job = home.job("mx", "matrix", axes={"OS": ["linux", "windows"], "JDK": ["17"]})
    run = job.start(start_ms=START)
    assert sorted(p.name for p in job.builds_dir.iterdir()) == ["1", "legacyIds"]
    assert not (job.dir / "configurations").exists()
    assert not (run.dir / "build.xml").exists()
    run.finish("SUCCESS", duration_ms=3000)
    parent = parse(run.dir / "build.xml")
    assert parent.tag == "matrix-build" and child(parent, "result") == "SUCCESS"
    assert [e.text for e in parent.iterfind("axes/hudson.matrix.TextAxis/name")] == ["OS", "JDK"]
    for os_name in ("linux", "windows"):
        cdir = job.dir / "configurations" / "axis-OS" / os_name / "axis-JDK" / "17"
        assert (cdir / "nextBuildNumber").read_text() == "2\n"
        assert parse(cdir / "config.xml").tag == "matrix-config"
        crun = parse(cdir / "builds" / "1" / "build.xml")
        assert crun.tag == "matrix-run" and child(crun, "result") == "SUCCESS"
        assert log_lines(cdir / "builds" / "1" / "log")[-1] == b"Finished: SUCCESS"
        up = crun.find("actions/hudson.model.CauseAction/causeBag/entry/hudson.model.Cause_-UpstreamCause")
        assert up is not None and child(up, "upstreamBuild") == "1" and child(up, "upstreamProject") == "mx"
        # children are complete before the parent's final build.xml
        assert (cdir / "builds/1/build.xml").stat().st_mtime_ns <= (run.dir / "build.xml").stat().st_mtime_ns
    assert log_lines(run.dir / "log")[-1] == b"Finished: SUCCESS"
    assert leftovers(home.root) == []


def test_matrix_reopened_keeps_axes(home: JenkinsHome) -> None:
    home.job("mx", "matrix", axes={"OS": ["linux", "mac"]})
    job = home.job("mx")
    assert job.kind == "matrix" and job.axes == {"OS": ["linux", "mac"]}


# -- deletion, recreation, legacy -----------------------------------------------------------------------


def test_discard(home: JenkinsHome, monkeypatch: pytest.MonkeyPatch) -> None:
    job = home.job("hello")
    job.start(start_ms=START).finish(duration_ms=1)
    job.start(start_ms=START).finish(duration_ms=1)
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((Path(src).name, Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    job.discard(1)
    assert renames == [("1", ".1")]
    assert not (job.builds_dir / "1").exists() and not (job.builds_dir / ".1").exists()
    assert (job.builds_dir / "2" / "build.xml").exists()


def test_recreated_job_reuses_numbers(home: JenkinsHome) -> None:
    job = home.job("hello")
    job.start(start_ms=START).finish(duration_ms=1)
    job.start(start_ms=START).finish(duration_ms=1)
    home.delete_job("hello")
    assert not job.dir.exists()
    again = home.job("hello")
    assert again.start(start_ms=START + 10).number == 1


def test_legacy_build(home: JenkinsHome) -> None:
    job = home.job("old")
    d = job.legacy_build(2, datetime(2013, 6, 5, 14, 30, 12), "FAILURE", duration_ms=777)
    assert d == job.builds_dir / "2013-06-05_14-30-12"
    text = (d / "build.xml").read_text()
    assert text.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    root = ET.fromstring(text)
    assert child(root, "number") == "2"
    assert child(root, "timestamp") is None and child(root, "startTime") is None
    assert child(root, "result") == "FAILURE" and child(root, "duration") == "777"
    assert log_lines(d / "log")[-1] == b"Finished: FAILURE"
    assert (job.dir / "nextBuildNumber").read_text() == "3\n"


# -- buildsDir ------------------------------------------------------------------------------------------


def test_builds_dir_template(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "h", builds_dir="${JENKINS_HOME}/builds/${ITEM_FULL_NAME}")
    config = parse(home.root / "config.xml")
    assert config.tag == "hudson"
    assert child(config, "buildsDir") == "${JENKINS_HOME}/builds/${ITEM_FULL_NAME}"
    assert (home.root / "config.xml").read_text().startswith("<?xml version='1.1' encoding='UTF-8'?>\n")
    job = home.job("team/api", "pipeline")
    assert job.builds_dir == home.root / "builds" / "team" / "api"
    run = job.start(start_ms=START)
    run.finish(duration_ms=1)
    assert (home.root / "builds/team/api/1/build.xml").exists()
    assert not (job.dir / "builds").exists()
    assert (job.dir / "nextBuildNumber").read_text() == "2\n"
    # a later JenkinsHome on the same root picks the setting up from config.xml
    assert JenkinsHome(tmp_path / "h").job("team/api").builds_dir == job.builds_dir


def test_builds_dir_item_rootdir(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "h", builds_dir="${ITEM_ROOTDIR}/runs")
    job = home.job("a")
    assert job.builds_dir == job.dir / "runs"


# -- multibranch ----------------------------------------------------------------------------------------


def test_mangle_branch_name() -> None:
    assert mangle_branch_name("main") == "main"
    assert mangle_branch_name("release-1") == "release-1"
    mangled = mangle_branch_name("feature/foo")
    assert mangled != "feature/foo" and "/" not in mangled and mangled.startswith("feature-foo.")
    assert mangle_branch_name("feature/foo") == mangled  # deterministic
    assert mangle_branch_name("feature-foo") == "feature-foo"
    assert mangle_branch_name("-x") != "-x"
    assert mangle_branch_name("a" * 33) != "a" * 33
    assert mangle_branch_name("über").startswith("_c3_bcber.")


def test_multibranch(home: JenkinsHome) -> None:
    jobs = home.multibranch("shop", ["main", "feature/login"])
    assert parse(home.root / "jobs/shop/config.xml").tag == (
        "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
    )
    assert jobs["main"].dir == home.root / "jobs/shop/branches/main"
    feature = jobs["feature/login"]
    assert feature.dir.parent == home.root / "jobs/shop/branches"
    assert feature.dir.name == mangle_branch_name("feature/login") != "feature/login"
    assert feature.kind == "pipeline"
    assert feature.full_name == "shop/feature%2Flogin"
    for branch, job in jobs.items():
        config = parse(job.dir / "config.xml")
        assert config.tag == "flow-definition"
        head = config.find(
            "properties/org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty/branch/head"
        )
        assert head is not None and head.get("class") == "jenkins.plugins.git.GitBranchSCMHead"
        assert child(head, "name") == branch
    run = feature.start(start_ms=START, cause="Branch indexing")
    run.finish(duration_ms=1, commit="b" * 40)
    assert (feature.builds_dir / "1" / "build.xml").exists()
    assert log_lines(run.dir / "log")[0] == b"Branch indexing"
    # reopen by full name (encoded or raw) resolves to the mangled directory
    assert home.job("shop/feature%2Flogin").dir == feature.dir
    assert home.job("shop/feature/login").dir == feature.dir


# -- every file parses -----------------------------------------------------------------------------------


def test_example_home(tmp_path: Path) -> None:
    home = build_example(tmp_path / "ex")
    xml_files = list(home.root.rglob("*.xml"))
    assert len(xml_files) > 20
    for path in xml_files:
        parse(path)  # every file is well-formed
    assert leftovers(home.root) == []
    jobs = {p.relative_to(home.root / "jobs").as_posix() for p in home.jobs()}
    assert "hello" in jobs and "team/jobs/api" in jobs and "nightly" in jobs and "matrix-demo" in jobs
    assert {j for j in jobs if j.startswith("shop/branches/")} == {
        "shop/branches/main",
        f"shop/branches/{mangle_branch_name('feature/login')}",
    }
    hello = home.root / "jobs/hello/builds"
    assert [child(parse(hello / str(n) / "build.xml"), "result") for n in (1, 2, 3)] == [
        "SUCCESS",
        "FAILURE",
        "SUCCESS",
    ]
    api = home.root / "jobs/team/jobs/api/builds/3/build.xml"
    assert child(parse(api), "completed") == "false" and child(parse(api), "result") is None
    nightly = home.root / "jobs/nightly/builds"
    assert child(parse(nightly / "1/build.xml"), "result") == "UNSTABLE"
    assert child(parse(nightly / "2/build.xml"), "result") == "ABORTED"
    assert not (nightly / "3/build.xml").exists()
    assert b"Finished:" not in (nightly / "3/log").read_bytes()
    assert (home.root / "jobs/matrix-demo/configurations/axis-OS/windows/builds/1/build.xml").exists()
    size = sum(p.stat().st_size for p in home.root.rglob("*") if p.is_file())
    assert size < 200_000
    # regenerating over an existing home works
    build_example(home.root)


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_build(tmp_path: Path) -> None:
    cmd = [sys.executable, str(REPO / "tools" / "fake_jenkins"), "--home", str(tmp_path / "h")]
    out = subprocess.run(
        [
            *cmd,
            "build",
            "team/api",
            "--kind",
            "pipeline",
            "--result",
            "FAILURE",
            "--duration",
            "0.2",
            "--steps",
            "2",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "team/api #1 FAILURE"
    run_dir = tmp_path / "h/jobs/team/jobs/api/builds/1"
    assert child(parse(run_dir / "build.xml"), "result") == "FAILURE"
    lines = log_lines(run_dir / "log")
    assert b"step 1/2" in lines and b"step 2/2" in lines and lines[-1] == b"Finished: FAILURE"
    out = subprocess.run(
        [*cmd, "build", "team/api", "--duration", "0"], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "team/api #2 SUCCESS"


def test_cli_example(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tools.fake_jenkins", "--home", str(tmp_path / "ex"), "example"],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    assert (tmp_path / "ex/jobs/hello/builds/3/build.xml").exists()
