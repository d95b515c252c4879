"""The real daemon: which runs reach Compass under each setting of what counts (a multibranch
project's primary branch, a feature branch, a pull request and a tag, and a housekeeping job), and a
reload that switches a job on sends its new runs, not the run it had while it was off.

What is not sent is proven by a witness: a run that is sent, finished after the others, and a
reconcile scan begun after it arrived (which looks at every recent run again), then an empty queue.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Daemon, drained, make_config, metric, wait_until
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import Head, JenkinsHome, Job

DaemonFactory = Callable[..., Daemon]
PIPELINES = {  # each job's first run, as buildtail names it (a branch job by its real branch name)
    "main": "shop/main#1",
    "feature/x": "shop/feature/x#1",
    "PR-1": "shop/PR-1#1",
    "v1.0": "shop/v1.0#1",
    "backup": "housekeeping/backup#1",
}
ALL = set(PIPELINES.values())


def _project(home: JenkinsHome) -> dict[str, Job]:
    jobs = home.multibranch(
        "shop",
        ["main", "feature/x", "PR-1", "v1.0"],
        heads={
            "main": Head(primary=True),
            "PR-1": Head(kind="pull_request", number=1, title="Fix login", source_branch="feature/x"),
            "v1.0": Head(kind="tag"),
        },
    )
    jobs["backup"] = home.job("housekeeping/backup")
    return jobs


def _finished(compass: FakeCompass) -> set[str]:
    return {
        pipeline
        for pipeline, events in compass.builds().items()
        if any(e["event"]["build"]["buildProperties"]["state"] != "IN_PROGRESS" for e in events)
    }


def _witnessed(compass: FakeCompass, daemon: Daemon, witness: str) -> set[str]:
    """Every pipeline Compass was sent, once ``witness`` (finished last) arrived, a reconcile scan
    that began after it ended, and the queue is empty."""
    wait_until(lambda: witness in _finished(compass), what=witness)
    scans = metric(daemon, "buildtail_reconcile_scans_total")
    wait_until(lambda: metric(daemon, "buildtail_reconcile_scans_total") >= scans + 2, 20, "a later scan")
    drained(daemon)
    return set(compass.builds())


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({}, ALL),  # the defaults: everything, as before
        (  # what Atlassian's own apps send: the default branch only
            {"branches": "primary", "pull_requests": False, "tags": False, "exclude": ["housekeeping/*"]},
            {"shop/main#1"},
        ),
        ({"pull_requests": False, "include": ["shop/**"]}, ALL - {"shop/PR-1#1", "housekeeping/backup#1"}),
        ({"branches": ["feature/*"], "tags": False}, ALL - {PIPELINES["main"], PIPELINES["v1.0"]}),
    ],
    ids=["defaults", "like-atlassian", "no-prs-shop-only", "feature-branches-no-tags"],
)
def test_each_setting_sends_exactly_its_runs(
    tmp_path: Path,
    home: JenkinsHome,
    compass: FakeCompass,
    daemon_factory: DaemonFactory,
    rules: dict[str, Any],
    expected: set[str],
) -> None:
    jobs = _project(home)
    daemon = daemon_factory(make_config(tmp_path, home, compass, **rules))
    witness = "backup" if PIPELINES["backup"] in expected else "main"
    for name, job in jobs.items():
        if name != witness:
            job.start().finish("SUCCESS")
    jobs[witness].start().finish("SUCCESS")  # last
    assert _witnessed(compass, daemon, PIPELINES[witness]) == expected
    if "shop/PR-1#1" in expected:
        (event,) = [
            e for e in compass.builds()["shop/PR-1#1"] if "SUCCESS" in e["event"]["build"]["description"]
        ]
        assert "PR-1: Fix login (into main)" in event["event"]["build"]["description"]


def test_a_job_switched_on_by_a_reload_sends_its_new_runs_only(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    jobs = _project(home)
    cfg = make_config(tmp_path, home, compass, exclude=["housekeeping/*"])
    daemon = daemon_factory(cfg)
    jobs["backup"].start().finish("FAILURE")  # while the job is off
    jobs["main"].start().finish("SUCCESS")
    assert "housekeeping/backup#1" not in _witnessed(compass, daemon, "shop/main#1")

    cfg["sources"][0].pop("exclude")
    daemon.config_path.write_text(json.dumps(cfg))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in daemon.stderr, what="the reload")
    jobs["backup"].start().finish("SUCCESS")  # news: the job is on
    sent = _witnessed(compass, daemon, "housekeeping/backup#2")
    assert "housekeeping/backup#1" not in sent, "the run from while the job was off was sent"
    said = re.search(r"housekeeping/backup #1 not counted: (.*)", daemon.stderr)
    assert said is not None and said.group(1).startswith(
        "excluded by exclude 'housekeeping/*' (source jenkins)"
    )
