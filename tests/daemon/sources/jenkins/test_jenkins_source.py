"""JenkinsSource over homes written the way Jenkins writes them, and over real Jenkins records."""

from __future__ import annotations

import csv
import logging
import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from daemon.config import JenkinsSourceSettings
from daemon.events import RunFacts
from daemon.sources.jenkins.source import Gone, JenkinsSource, Retry
from tests.parsers.samples import BILLION_LAUGHS
from tools.daemon_process import REPO
from tools.fake_jenkins import JenkinsHome

FIXTURES = REPO.parent / "shared" / "fixtures" / "jenkins-real"
URL = "https://jenkins.example.com/"
T0 = 1_700_000_000_000


def source(home: Path, *, matrix: bool = False, **kw: object) -> JenkinsSource:
    cfg = JenkinsSourceSettings.model_validate(
        {"type": "jenkins", "home": str(home), "url": URL, "matrix_configurations": matrix, **kw}
    )
    src = JenkinsSource(cfg, host="ci.example.com")
    src.discover()
    return src


def facts_of(src: JenkinsSource, run_dir: Path) -> RunFacts:
    f = src.observe(run_dir)
    assert isinstance(f, RunFacts), f
    return f


def age(path: Path, seconds: float) -> None:
    """Make a run directory and its files look ``seconds`` old."""
    when = time.time() - seconds
    for p in [*path.iterdir(), path]:
        os.utime(p, (when, when))


# --- discovery --------------------------------------------------------------------------------------


def test_discover_jobs_folders_multibranch_and_matrix(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    home.job("plain")
    home.job("folder/sub/app", "pipeline")
    home.multibranch("shop", ["main", "feature/login"])
    mx = home.job("mx", "matrix", axes={"OS": ["linux", "windows"]})
    mx.start(start_ms=T0).finish("SUCCESS", duration_ms=1000)

    src = source(tmp_path)
    assert sorted(src.layout.by_name) == ["folder/sub/app", "mx", "plain", "shop/feature/login", "shop/main"]
    job = src.layout.by_name["shop/feature/login"]
    assert job.dir.parent == tmp_path / "jobs" / "shop" / "branches"
    assert job.dir.name != "feature/login"  # the directory name is mangled
    assert job.builds_dir == job.dir / "builds"
    assert src.layout.by_name["folder/sub/app"].builds_dir == (
        tmp_path / "jobs" / "folder" / "jobs" / "sub" / "jobs" / "app" / "builds"
    )
    assert tmp_path / "jobs" / "folder" / "jobs" in src.layout.containers
    assert tmp_path / "jobs" / "shop" / "branches" in src.layout.containers

    with_configs = source(tmp_path, matrix=True)
    assert {"mx/OS=linux", "mx/OS=windows"} <= set(with_configs.layout.by_name)
    linux = with_configs.layout.by_name["mx/OS=linux"]
    assert linux.builds_dir == tmp_path / "jobs" / "mx" / "configurations" / "axis-OS" / "linux" / "builds"
    f = facts_of(with_configs, linux.builds_dir / "1")
    assert (f.job, f.number, f.running, f.result) == ("mx/OS=linux", 1, False, "SUCCESS")
    assert f.run_url == f"{URL}job/mx/OS=linux/1/"


def test_multibranch_urls_use_the_real_branch_name(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    branches = home.multibranch("shop", ["feature/login"])
    branches["feature/login"].start(start_ms=T0).finish("FAILURE", duration_ms=10)
    src = source(tmp_path)
    job = src.layout.by_name["shop/feature/login"]
    f = facts_of(src, job.builds_dir / "1")
    assert f.job == "shop/feature/login"
    assert f.run_url == f"{URL}job/shop/job/feature%252Flogin/1/"
    assert f.job_url == f"{URL}job/shop/job/feature%252Flogin/"
    assert (f.running, f.result) == (False, "FAILURE")


def test_custom_builds_dir_from_global_config(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path, builds_dir="${JENKINS_HOME}/var/builds/${ITEM_FULL_NAME}")
    run = home.job("team/api", "freestyle").start(start_ms=T0)
    run.finish("SUCCESS", duration_ms=2000)
    src = source(tmp_path)
    job = src.layout.by_name["team/api"]
    assert job.builds_dir == tmp_path / "var" / "builds" / "team" / "api"
    assert run.dir == job.builds_dir / "1"
    assert src.job_of(run.dir) == job
    assert src.run_dir("team/api", 1) == run.dir
    f = facts_of(src, run.dir)
    assert (f.job, f.number, f.start_ms, f.end_ms) == ("team/api", 1, T0, T0 + 2000)


def test_custom_builds_dir_with_multibranch_branch(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path, builds_dir="${JENKINS_HOME}/var/builds/${ITEM_FULL_NAME}")
    branch = home.multibranch("shop", ["feature/login"])["feature/login"]
    run = branch.start(start_ms=T0)
    run.finish("SUCCESS", duration_ms=10)
    assert run.dir == tmp_path / "var" / "builds" / "shop" / "feature%2Flogin" / "1"
    src = source(tmp_path)
    job = src.layout.by_name["shop/feature/login"]
    assert job.builds_dir == run.dir.parent
    f = facts_of(src, run.dir)
    assert (f.job, f.number, f.result) == ("shop/feature/login", 1, "SUCCESS")


def test_job_without_builds_dir_is_pending(tmp_path: Path) -> None:
    (tmp_path / "jobs" / "fresh").mkdir(parents=True)
    (tmp_path / "jobs" / "fresh" / "config.xml").write_text("<project/>")
    src = source(tmp_path)
    assert "fresh" in src.layout.by_name
    assert tmp_path / "jobs" / "fresh" in src.layout.pending


def test_containers_changed_by_mtime_and_once_more_when_listed_just_after_a_change(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    home.job("app")
    home.job("team/api")
    jobs, team_jobs = tmp_path / "jobs", tmp_path / "jobs" / "team" / "jobs"
    old = time.time() - 60
    for d in (jobs, team_jobs):
        os.utime(d, (old, old))
    src = source(tmp_path)
    assert src.layout.containers == {jobs, team_jobs}
    assert src.containers_changed() is False  # listed long after their last change: nothing to do
    home.job("team/new")
    assert src.containers_changed() is True  # the folder's jobs/ moved
    assert src.containers_changed() is False
    # listed within a timestamp tick of a change: a job made right after might not move the mtime
    home.job("other")
    src.discover()
    assert src.containers_changed() is True
    assert src.containers_changed() is False


def test_sweep_reports_each_run_that_came_without_a_hint_once(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    app, api = home.job("app"), home.job("team/api")
    app.start().finish("SUCCESS")  # history: older than the sweep's horizon
    age(app.builds_dir / "1", 60)
    src = source(tmp_path)
    since = int(time.time() * 1000) - 5000
    assert src.sweep(since, set()) == [], "a run older than the burst is not news"
    hinted, silent = app.start(), api.start()
    (api.builds_dir / "lastSuccessfulBuild").symlink_to("1")  # names that are not runs
    (api.builds_dir / "legacyIds").write_text("")
    src.note_run(hinted.dir)
    assert src.sweep(since, {hinted.dir}) == [silent.dir], "only the run without a hint"
    assert src.sweep(since, set()) == [], "reported once"
    third = app.start()
    assert src.sweep(since, set()) == [third.dir], "a directory listed before: any new name is news"


# --- observing one run ------------------------------------------------------------------------------


def test_running_freestyle_without_build_xml(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("folder/app").start(cause="Started by timer")
    run.log("+ make")
    assert not run.build_xml.exists()
    src = source(tmp_path)
    f = facts_of(src, run.dir)
    assert f.running is True
    assert f.result is None and f.end_ms is None
    assert f.start_is_exact is False
    assert abs(f.start_ms - time.time() * 1000) < 10_000
    assert f.causes == ("Started by timer",)
    assert f.dir_ino == run.dir.stat().st_ino


def test_finished_freestyle(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    job = home.job("folder/app")
    for _ in range(2):
        job.start(start_ms=T0 - 10_000).finish("SUCCESS", duration_ms=1)
    run = job.start(start_ms=T0)
    run.finish("UNSTABLE", duration_ms=65_432, commit="c0ffee" * 6 + "abcd", display_name="#3 release")
    src = source(tmp_path)
    f = facts_of(src, run.dir)
    assert (f.job, f.number, f.running, f.result) == ("folder/app", 3, False, "UNSTABLE")
    assert (f.start_ms, f.end_ms, f.start_is_exact) == (T0, T0 + 65_432, True)
    assert f.run_url == "https://jenkins.example.com/job/folder/job/app/3/"
    assert f.job_url == "https://jenkins.example.com/job/folder/job/app/"
    assert f.display_name == "#3 release"
    assert f.commit == "c0ffee" * 6 + "abcd"
    assert f.timed_out is False


def test_aborted_by_timeout(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("nightly").start(start_ms=T0, cause="Started by timer")
    run.finish("ABORTED", duration_ms=180_000, timed_out=True)
    f = facts_of(source(tmp_path), run.dir)
    assert (f.result, f.timed_out, f.end_ms) == ("ABORTED", True, T0 + 180_000)


@pytest.mark.parametrize("durability", ["MAX_SURVIVABILITY", "PERFORMANCE_OPTIMIZED"])
def test_running_pipeline_is_never_success(tmp_path: Path, durability: str) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("team/api", "pipeline").start(start_ms=T0, durability=durability)
    run.log("[Pipeline] node")
    run.checkpoint()
    xml = run.build_xml.read_text()
    assert "<result>SUCCESS</result>" in xml  # nested execution/result, not the build's
    f = facts_of(source(tmp_path), run.dir)
    assert f.running is True
    assert f.result is None
    assert (f.start_ms, f.start_is_exact) == (T0, True)
    run.finish("SUCCESS", duration_ms=500)
    f = facts_of(source(tmp_path), run.dir)
    assert (f.running, f.result, f.end_ms) == (False, "SUCCESS", T0 + 500)


def test_half_written_build_xml_is_retried(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("app").start(start_ms=T0)
    run.finish("SUCCESS", duration_ms=100)
    data = run.build_xml.read_bytes()
    with open(run.build_xml, "r+b") as fh:
        fh.truncate(len(data) // 2)
    r = source(tmp_path).observe(run.dir)
    assert isinstance(r, Retry)
    assert 0 < r.delay <= 5
    assert "build.xml" in r.reason


def test_hostile_build_xml_is_gone_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("app").start(start_ms=T0)
    run.finish("SUCCESS", duration_ms=100)
    run.build_xml.write_bytes(BILLION_LAUGHS)
    src = source(tmp_path)
    with caplog.at_level(logging.ERROR, logger="buildtail.jenkins"):
        assert isinstance(src.observe(run.dir), Gone)
    (rec,) = [r for r in caplog.records if r.name == "buildtail.jenkins"]
    assert rec.levelno == logging.ERROR
    assert str(run.dir) in rec.getMessage()
    assert "refused" in rec.getMessage()
    # remembered: not parsed again even if it were rewritten
    run.build_xml.write_bytes(b"<build><result>SUCCESS</result></build>")
    assert isinstance(src.observe(run.dir), Gone)


def test_discarded_run_is_gone(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    job = home.job("app")
    run = job.start(start_ms=T0)
    run.finish("SUCCESS", duration_ms=1)
    src = source(tmp_path)
    assert isinstance(src.observe(run.dir), RunFacts)
    job.discard(1)
    assert isinstance(src.observe(run.dir), Gone)
    assert src.runs_in(src.layout.by_name["app"]) == []


def test_dir_outside_any_job_is_gone(tmp_path: Path) -> None:
    JenkinsHome(tmp_path).job("app")
    stray = tmp_path / "elsewhere" / "1"
    stray.mkdir(parents=True)
    assert isinstance(source(tmp_path).observe(stray), Gone)


def test_legacy_date_named_dir(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    when = datetime(2013, 6, 5, 14, 30, 12)
    d = home.job("old").legacy_build(7, when, "FAILURE", duration_ms=2_000)
    f = facts_of(source(tmp_path), d)
    expected_start = int(when.timestamp() * 1000)  # the directory name is server local time
    assert (f.number, f.running, f.result) == (7, False, "FAILURE")
    assert (f.start_ms, f.start_is_exact, f.end_ms) == (expected_start, False, expected_start + 2_000)
    assert f.run_url == f"{URL}job/old/7/"


def test_finished_log_without_final_build_xml_waits(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("app").start()
    run.log("Finished: SUCCESS")
    r = source(tmp_path).observe(run.dir)
    assert isinstance(r, Retry)
    assert r.reason == "waiting for the final build.xml"
    assert 25 < r.delay <= 31


def test_stale_run_without_record(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    run = home.job("app").start()
    run.log("+ make")
    age(run.dir, 7200)
    src = source(tmp_path, stale_after="1h")
    assert src.observe(run.dir) is None
    f = src.observe(run.dir, known_open=True)
    assert isinstance(f, RunFacts)
    assert (f.running, f.result) == (False, "UNKNOWN")


# --- finding runs -----------------------------------------------------------------------------------


def test_non_run_entries_are_never_runs(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    job = home.job("app")
    for _ in range(2):
        job.start(start_ms=T0).finish("SUCCESS", duration_ms=1)
    b = job.builds_dir
    (b / "3-atomic1234567890tmp").mkdir()
    (b / "build.xml-atomic99tmp").mkdir()
    (b / ".4").mkdir()
    (b / "lastSuccessfulBuild").symlink_to("2")
    (b / "lastFailedBuild").symlink_to("-1")
    (b / "5").symlink_to("1")  # old-style number symlink, never a second run
    (b / "lastStable").mkdir()  # a permalink copy on Windows-made homes
    (b / "notes").mkdir()
    src = source(tmp_path)
    assert sorted(e.name for e in src.runs_in(src.layout.by_name["app"])) == ["1", "2"]
    assert sorted(p.name for p in src.scan(first_start=False, since_ms=None, open_dirs=set())) == ["1", "2"]


def test_scan_first_start_returns_only_running_runs(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    fs = home.job("fs")
    fs.start(start_ms=T0).finish("SUCCESS", duration_ms=1)
    running_fs = fs.start()
    pipe = home.job("pipe", "pipeline")
    pipe.start(start_ms=T0).finish("FAILURE", duration_ms=1)
    running_pipe = pipe.start()
    running_pipe.checkpoint()
    stale = home.job("stale").start()
    age(stale.dir, 3 * 86_400)
    src = source(tmp_path)
    found = src.scan(first_start=True, since_ms=None, open_dirs=set())
    assert sorted(found) == sorted([running_fs.dir, running_pipe.dir])


def test_scan_since_filters_by_mtime_and_keeps_open_dirs(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    job = home.job("app")
    old = job.start(start_ms=T0)
    old.finish("SUCCESS", duration_ms=1)
    also_old = job.start(start_ms=T0)
    also_old.finish("SUCCESS", duration_ms=1)
    age(old.dir, 3600)
    age(also_old.dir, 3600)
    fresh = job.start()
    fresh.finish("FAILURE")
    src = source(tmp_path)
    since = int((time.time() - 60) * 1000)
    assert src.scan(first_start=False, since_ms=since, open_dirs=set()) == [fresh.dir]
    found = src.scan(first_start=False, since_ms=since, open_dirs={old.dir})
    assert sorted(found) == sorted([old.dir, fresh.dir])
    assert len(src.scan(first_start=False, since_ms=None, open_dirs=set())) == 3


def test_poll_reports_new_run_dirs(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path)
    job = home.job("app")
    job.start(start_ms=T0).finish("SUCCESS", duration_ms=1)
    src = source(tmp_path)
    src.scan(first_start=False, since_ms=None, open_dirs=set())
    assert src.poll(set()) == ([], True)  # jobs/ was listed right after it changed: listed again once
    assert src.poll(set()) == ([], False)
    run = job.start()
    # a new directory changes the builds dir mtime, at file-system timestamp granularity
    os.utime(job.builds_dir, ns=(time.time_ns() + 5_000_000_000,) * 2)
    found, _ = src.poll(set())
    assert found == [run.dir]


# --- real Jenkins records ---------------------------------------------------------------------------

_LEGACY_NOTE = re.compile(r"legacy date dir (\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})")


def test_real_fixtures_match_expected() -> None:
    if not (FIXTURES / "EXPECTED.csv").is_file():
        pytest.skip("real Jenkins fixtures are not present next to the checkout")
    observed: dict[tuple[str, str, str], RunFacts] = {}
    for sample in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        src = source(sample, matrix=True)
        for job in src.layout.by_name.values():
            for entry in src.runs_in(job):
                f = src.observe(Path(entry.path))
                assert isinstance(f, RunFacts), (sample.name, job.full_name, entry.name, f)
                observed[(sample.name, job.full_name, entry.name)] = f

    with (FIXTURES / "EXPECTED.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["number"] != "none"]
    compared = 0
    matched: set[tuple[str, str, str]] = set()
    for row in rows:
        legacy = _LEGACY_NOTE.search(row["notes"])
        dir_name = legacy.group(1) if legacy else row["number"]
        key = (row["sample"], row["job"], dir_name)
        assert key in observed, f"run not found: {key}"
        f = observed[key]
        where = f"{key}: {f}"
        assert f.job == row["job"], where
        assert f.number == int(row["number"]), where
        assert f.running is (row["running"] == "true"), where
        assert (f.result or "none") == row["result"], where
        if row["started_ms"] != "none":
            assert f.start_ms == int(row["started_ms"]), where
            assert f.start_is_exact is True, where
        elif legacy:
            local = datetime.strptime(legacy.group(1), "%Y-%m-%d_%H-%M-%S")
            assert f.start_ms == int(local.timestamp() * 1000), where
        if not f.running and row["result"] != "none" and row["started_ms"] != "none":
            assert f.end_ms == int(row["started_ms"]) + int(row["duration_ms"]), where
        matched.add(key)
        compared += 1
    assert compared >= 100
    # nothing beyond the build records was taken for a run (permalink copies, symlinks, bookkeeping)
    assert set(observed) == matched


# --- symlinks: loops, second names, jobs kept elsewhere ---------------------------------------------


def test_a_symlink_loop_is_walked_once_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = JenkinsHome(tmp_path / "home")
    home.job("good").start().finish("SUCCESS")
    home.job("loop/inner")
    (home.root / "jobs" / "loop" / "jobs" / "back").symlink_to("../../../jobs")  # loop/jobs/back -> jobs
    (home.root / "jobs" / "self").symlink_to("self")  # a symlink to itself
    src = source(home.root)
    with caplog.at_level(logging.WARNING, logger="buildtail.jenkins"):
        assert sorted(src.discover().by_name) == ["good", "loop/inner"]
        src.discover()  # the reconcile scan walks again: no second warning
    said = [r.getMessage() for r in caplog.records if "already read" in r.getMessage()]
    assert len(said) == 1 and "back" in said[0], said


def test_a_job_kept_on_another_volume_through_a_symlink_is_a_job(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "home")
    elsewhere = JenkinsHome(tmp_path / "other-volume")
    run = elsewhere.job("big").start()
    run.finish("FAILURE")
    (home.root / "jobs").mkdir(parents=True, exist_ok=True)
    (home.root / "jobs" / "big").symlink_to(elsewhere.root / "jobs" / "big")
    src = source(home.root)
    assert list(src.layout.by_name) == ["big"]
    job = src.layout.by_name["big"]
    assert job.dir == home.root / "jobs" / "big"  # under the home's name, not the target's
    (entry,) = src.runs_in(job)
    f = facts_of(src, Path(entry.path))
    assert (f.job, f.number, f.result) == ("big", 1, "FAILURE")


def test_a_job_with_a_second_name_is_reported_once_under_its_real_one(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "home")
    home.job("app").start().finish("SUCCESS")
    (home.root / "jobs" / "alias").symlink_to("app")  # sorts before "app", and still loses to it
    src = source(home.root)
    assert list(src.layout.by_name) == ["app"]


def test_url_encoded_branch_directories_without_their_name_file(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "home")
    branches = home.multibranch("shop", ["main"])
    branch_dir = branches["main"].dir
    encoded = branch_dir.parent / "feature%3A%20browsing%2Fpart%201"
    branch_dir.rename(encoded)
    (encoded / "config.xml").write_text("<flow-definition/>")  # no branch property either
    (encoded / "name-utf8.txt").unlink(missing_ok=True)
    src = source(home.root)
    assert "shop/feature: browsing/part 1" in src.layout.by_name


def test_a_running_runs_commits_are_read_again_only_when_its_changelogs_change(tmp_path: Path) -> None:
    """A run in progress is looked at at each change of its log: its changelogs are parsed again only
    when one changed, appeared or went (name, mtime, size), and what was kept goes when it ends."""
    home = JenkinsHome(tmp_path / "jenkins")
    run = home.job("team/app", "pipeline").start(start_ms=T0)
    first_log = run.changelog(["OPS-1 the login"])
    src = source(home.root)
    src.changelog = True  # as the daemon makes it with a jira section
    looks = [src.observe(run.dir) for _ in range(2)]
    assert all(isinstance(f, RunFacts) and f.running for f in looks)
    first, again = (f.commits for f in looks if isinstance(f, RunFacts))
    assert [c.message for c in first] == ["OPS-1 the login"]
    assert again is first  # unchanged: the kept tuple, not a second parse
    first_log.write_bytes(first_log.read_bytes().replace(b"OPS-1 the login", b"OPS-1 the login page"))
    changed = src.observe(run.dir)
    assert isinstance(changed, RunFacts) and [c.message for c in changed.commits] == ["OPS-1 the login page"]
    # a second checkout, a new file (the fake's commit ids restart at each file: its first is the same)
    run.changelog(["OPS-1 the login page", "OPS-2 the logout"])
    second = src.observe(run.dir)
    assert isinstance(second, RunFacts)
    assert sorted(c.message for c in second.commits) == ["OPS-1 the login page", "OPS-2 the logout"]
    assert len(src._commits) == 1
    run.finish("SUCCESS", duration_ms=500)
    done = src.observe(run.dir)
    assert isinstance(done, RunFacts) and not done.running and len(done.commits) == 2
    assert len(src._commits) == 0  # a finished run is not looked at again: nothing kept of it
