"""The Jenkins source tells a multibranch run's head (branch, pull request, tag, primary) from its
branch job's config.xml, reads it again when branch indexing rewrites that file, and tells none for
other jobs. Homes written the way Jenkins writes them."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.config import JenkinsSourceSettings
from daemon.events import RunFacts
from daemon.sources.jenkins.source import JenkinsSource
from parsers import BranchHead
from tools.fake_jenkins import Head, JenkinsHome


def _source(home: Path) -> JenkinsSource:
    cfg = JenkinsSourceSettings.model_validate({"type": "jenkins", "home": str(home)})
    src = JenkinsSource(cfg, host="ci.example.com")
    src.discover()
    return src


def _facts(src: JenkinsSource, run_dir: Path) -> RunFacts:
    facts = src.observe(run_dir)
    assert isinstance(facts, RunFacts), facts
    return facts


def test_each_run_carries_its_branch_jobs_head(tmp_path: Path) -> None:
    home = JenkinsHome(tmp_path / "jenkins")
    jobs = home.multibranch(
        "shop",
        ["main", "feature/x", "PR-1", "v1.0"],
        heads={
            "main": Head(primary=True),
            "PR-1": Head(kind="pull_request", flavor="bitbucket", number=1, title="Fix login"),
            "v1.0": Head(kind="tag", flavor="git"),
        },
    )
    plain = home.job("nightly-backup")
    runs = {name: job.start() for name, job in jobs.items()}
    backup = plain.start()
    src = _source(home.root)
    heads = {name: _facts(src, run.dir).head for name, run in runs.items()}
    assert heads["main"] == BranchHead(name="main", kind="branch", primary=True)
    assert heads["feature/x"] == BranchHead(name="feature/x", kind="branch")  # git-plugin's, as before
    assert heads["v1.0"] == BranchHead(name="v1.0", kind="tag")
    pr = heads["PR-1"]
    assert pr is not None and (pr.kind, pr.pr_id, pr.pr_title, pr.pr_target) == (
        "pull_request",
        "1",
        "Fix login",
        "main",
    )
    assert _facts(src, backup.dir).head is None
    assert _facts(src, runs["feature/x"].dir).job == "shop/feature/x"  # the real name: use shop/** to match

    # branch indexing rewrites the file when the title changes: read again, by its mtime
    config = jobs["PR-1"].dir / "config.xml"
    text = config.read_text().replace("Fix login", "Fix the login page")
    config.write_text(text)
    st = config.stat()
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = _facts(src, runs["PR-1"].dir).head
    assert again is not None and again.pr_title == "Fix the login page"
    # a file cut short mid-write: the last good reading stands
    config.write_text(text[:300])
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert _facts(src, runs["PR-1"].dir).head == again
