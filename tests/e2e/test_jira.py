"""Jira as the second destination, end to end: a live Jenkins home, the real daemon process, the
fake Compass and the fake Jira.

A multibranch branch ``feature/ABC-12-login``, a freestyle job whose changelog mentions ``ABC-7``,
a deploy job: Jira receives schema-valid builds and deployments with the right keys, states and
environments, several items to a request; Compass receives its events as before; and either
destination being down for a while loses nothing for either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config, wait_until
from tools.fake_compass import FakeCompass, Fault, properties_of
from tools.fake_jenkins import JenkinsHome
from tools.fake_jira import FakeJira

DaemonFactory = Callable[..., Daemon]
BRANCH = "feature/ABC-12-login"
BRANCH_JOB = "shop/feature/ABC-12-login"
DEPLOYMENTS = [
    {"match": "deploy-*", "environment": {"category": "PRODUCTION", "name": "production", "id": "prod"}}
]


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(known_projects=["ABC"]) as fake:
        yield fake


def _config(tmp: Path, home: JenkinsHome, compass: FakeCompass, jira: FakeJira) -> dict[str, Any]:
    cfg = make_config(tmp, home, compass)
    cfg["compass"]["deployments"] = DEPLOYMENTS
    secret = tmp / "jira-secret"
    secret.write_text(jira.client_secret + "\n")
    cfg["jira"] = {
        "site": "example.atlassian.net",
        "cloud_id": jira.cloud_id,
        "client_id": jira.client_id,
        "client_secret_file": str(secret),
        "api_url": jira.base_url,
        "project_keys": ["ABC"],
        "batch_window": "2s",
        "timeout": "3s",
        "rate_limit_per_minute": 0,
    }
    return cfg


def _final(jira: FakeJira, kind: str) -> dict[str, str]:
    """What Jira keeps of ``kind``: pipeline id -> state of its newest item."""
    out: dict[str, str] = {}
    for item in jira.stored(kind).values():
        pipeline = item.get("pipelineId") or item["pipeline"]["id"]
        out[pipeline] = item["state"]
    return out


def _compass_final(compass: FakeCompass) -> dict[str, str]:
    out: dict[str, str] = {}
    for runs in (compass.builds(), compass.deployments()):
        for pipeline, events in runs.items():
            out[pipeline] = properties_of(events[-1])["state"]
    return out


def test_builds_and_deployments_reach_jira_with_their_issue_keys_batched(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, jira: FakeJira, daemon_factory: DaemonFactory
) -> None:
    branch = home.multibranch("shop", [BRANCH])[BRANCH]
    app, deploy, docs = home.job("app"), home.job("deploy-web"), home.job("docs")
    daemon_factory(_config(tmp_path, home, compass, jira))
    runs = [branch.start(), app.start(), deploy.start(), docs.start()]
    runs[0].changelog(["Login form", "Validate the password"])
    runs[1].changelog(["ABC-7 fix the login\n\nand UTF-8 in names"])
    runs[2].changelog(["Release ABC-7"])
    runs[3].changelog(["Typo"])
    for run, result in zip(runs, ["SUCCESS", "FAILURE", "SUCCESS", "SUCCESS"], strict=True):
        run.finish(result)
    wanted = {f"jenkins/{BRANCH_JOB}": "successful", "jenkins/app": "failed"}
    wait_until(lambda: _final(jira, "builds") == wanted, 30, "Jira's builds")
    wait_until(lambda: _final(jira, "deployments") == {"jenkins/deploy-web": "successful"}, 30, "deployments")
    builds = {b["pipelineId"]: b for b in jira.stored("builds").values()}
    assert builds[f"jenkins/{BRANCH_JOB}"]["issueKeys"] == ["ABC-12"]
    assert builds["jenkins/app"]["issueKeys"] == ["ABC-7"]  # UTF-8 kept out by project_keys
    (deployment,) = jira.stored("deployments").values()
    assert deployment["issueKeys"] == ["ABC-7"]
    assert deployment["environment"] == {"id": "prod", "displayName": "production", "type": "production"}
    assert all(s.status == 202 for s in jira.submissions), "every body valid for Jira's schema"
    assert all(not s.answer.get(f"rejected{s.kind.title()}") for s in jira.submissions)
    assert max(len(s.body[s.kind]) for s in jira.submissions) > 1, "several items in one request"
    finals = {
        "app#1": "FAILED",
        "deploy-web#1": "SUCCESSFUL",
        "docs#1": "SUCCESSFUL",
        f"{BRANCH_JOB}#1": "SUCCESSFUL",
    }
    compass.wait_for(lambda _: _compass_final(compass) == finals, timeout=15)
    assert compass.invalid == []
    assert "deploy-web#1" in compass.deployments()


def _outage(down: Callable[[], None], up: Callable[[], None], seconds: float) -> float:
    """``down`` now, ``up`` once ``seconds`` have passed; returns when it came back."""
    down()
    deadline = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= deadline, seconds + 5, "the outage's end")
    up()
    return time.monotonic()


OUTAGE_S = 60.0
# after a minute of refusals the backoff (full jitter, doubling, capped at 300 s) may wait minutes
BACKLOG_S = 330.0


@pytest.mark.timeout(2 * OUTAGE_S + 3 * BACKLOG_S)
@pytest.mark.slow  # each destination down for a minute, then its backlog delivered: 2.5 to 5 minutes
def test_one_destination_down_for_a_while_loses_nothing_for_either(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, jira: FakeJira, daemon_factory: DaemonFactory
) -> None:
    jobs = [home.job(f"svc{i}") for i in range(6)]
    daemon_factory(_config(tmp_path, home, compass, jira))

    def build(job_index: int, key: int) -> None:
        run = jobs[job_index].start()
        run.changelog([f"ABC-{key} change"])
        run.finish("SUCCESS")

    def jira_down() -> None:
        jira.interpose(503, "maintenance", headers={"Retry-After": "2"}, times=100_000)
        for i in range(3):
            build(i, 100 + i)
        # Compass keeps delivering while Jira refuses
        compass.wait_for(lambda _: {f"svc{i}#1" for i in range(3)} <= set(compass.builds()), timeout=15)

    _outage(jira_down, jira.clear_interposed, OUTAGE_S)
    assert not jira.stored("builds"), "nothing reached Jira while it was down"

    def compass_down() -> None:
        compass.script(*[Fault(status=503)] * 100_000)
        for i in range(3, 6):
            build(i, 100 + i)
        wait_until(lambda: len(jira.stored("builds")) == 6, BACKLOG_S, "Jira's builds, Compass down")

    _outage(compass_down, compass.unscript, OUTAGE_S)
    wait_until(lambda: len(jira.stored("builds")) == 6, BACKLOG_S, "every build in Jira")
    wanted = {f"svc{i}#1": "SUCCESSFUL" for i in range(6)}
    compass.wait_for(lambda _: _compass_final(compass) == wanted, timeout=BACKLOG_S)
    keys = sorted(b["issueKeys"][0] for b in jira.stored("builds").values())
    assert keys == [f"ABC-{100 + i}" for i in range(6)]


def test_backfill_sends_history_to_jira_only_when_asked(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, jira: FakeJira, daemon_factory: DaemonFactory
) -> None:
    now = int(time.time() * 1000)
    daemon = daemon_factory(_config(tmp_path, home, compass, jira), start=False)
    daemon.start()
    assert daemon.stop() == 0
    job = home.job("app")
    for hours_ago, key in [(30, "ABC-1"), (20, "ABC-2"), (10, None)]:
        run = job.start(start_ms=now - hours_ago * 3_600_000)
        if key:
            run.changelog([f"{key} old change"])
        run.finish("SUCCESS", duration_ms=60_000)
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    command = [sys.executable, "-m", "daemon", "backfill", "--config", str(daemon.config_path)]

    def backfill(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    wrong = backfill("--since", "2d", "--to", "bamboo")
    assert wrong.returncode == 2 and "bamboo" in wrong.stderr
    default = backfill("--since", "25h")
    assert default.returncode == 0, default.stderr
    assert set(compass.builds()) == {"app#2", "app#3"} and jira.submissions == [], "Compass only by default"
    both = backfill("--since", "2d", "--to", "compass,jira")
    assert both.returncode == 0, both.stderr
    assert set(compass.builds()) == {"app#1", "app#2", "app#3"}
    assert [(b["pipelineId"], b["buildNumber"], b["issueKeys"]) for b in jira.stored("builds").values()] == [
        ("jenkins/app", 1, ["ABC-1"])
    ]
