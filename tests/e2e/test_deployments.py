"""Deploy jobs in a live Jenkins home reach Compass as deployment events (checked against the
deployment schema), with their environment and states; the other jobs still send build events;
``backfill`` sends past deployments as deployments."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO, TOKEN, Daemon, make_config
from tools.fake_compass import FakeCompass, properties_of
from tools.fake_jenkins import JenkinsHome

DaemonFactory = Callable[..., Daemon]
HOUR_MS = 3_600_000

DEPLOYMENTS = [
    {"match": "deploy-*", "environment": {"category": "PRODUCTION", "name": "production", "id": "prod"}},
    {
        "match": "release/**",
        "environment_parameter": "TARGET_ENV",
        "environments": {
            "stage": {"category": "STAGING", "name": "staging"},
            "live": {"category": "PRODUCTION", "name": "production", "id": "prod"},
        },
    },
]


def _config(tmp: Path, home: JenkinsHome, compass: FakeCompass) -> dict[str, Any]:
    cfg = make_config(tmp, home, compass)
    cfg["compass"]["deployments"] = DEPLOYMENTS
    return cfg


def _final(events: list[dict[str, Any]]) -> dict[str, Any]:
    return properties_of(events[-1])


def test_freestyle_pipeline_and_parameterized_deploy_jobs_send_deployment_events(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    web, api = home.job("deploy-web"), home.job("deploy-api", "pipeline")
    release, app = home.job("release/shop"), home.job("app", "pipeline")
    daemon_factory(_config(tmp_path, home, compass))
    running = web.start()
    running.log("rsync to prod")
    compass.wait_for(lambda _: "deploy-web#1" in compass.deployments())
    running.finish("SUCCESS")
    api.start().finish("FAILURE")
    release.start(parameters={"TARGET_ENV": "stage"}).finish("SUCCESS")
    release.start(parameters={"TARGET_ENV": "live"}).finish("ABORTED")
    app.start().finish("SUCCESS")
    wanted = {"deploy-web#1", "deploy-api#1", "release/shop#1", "release/shop#2"}

    def arrived(_: object) -> bool:
        deployments = compass.deployments()
        done = {p for p, events in deployments.items() if _final(events)["state"] != "IN_PROGRESS"}
        builds = compass.builds()
        return wanted <= done and "app#1" in builds and _final(builds["app#1"])["state"] != "IN_PROGRESS"

    compass.wait_for(arrived, timeout=15)
    assert compass.invalid == [], "every body valid against its schema"
    deployments = compass.deployments()
    assert [properties_of(e)["state"] for e in deployments["deploy-web#1"]] == ["IN_PROGRESS", "SUCCESSFUL"]
    prod = {"category": "PRODUCTION", "displayName": "production", "environmentId": "prod"}
    assert _final(deployments["deploy-web#1"])["environment"] == prod
    assert _final(deployments["deploy-api#1"])["state"] == "FAILED"
    assert _final(deployments["release/shop#1"])["environment"]["category"] == "STAGING"
    assert _final(deployments["release/shop#2"])["environment"] == prod
    assert _final(deployments["release/shop#2"])["state"] == "CANCELLED"
    assert {p: _final(e)["sequenceNumber"] for p, e in deployments.items()} == {
        "deploy-web#1": 1,
        "deploy-api#1": 1,
        "release/shop#1": 1,
        "release/shop#2": 2,
    }
    assert set(compass.builds()) == {"app#1"}, "a job no rule names still sends build events"
    assert properties_of(compass.builds()["app#1"][-1])["state"] == "SUCCESSFUL"


def test_the_environment_from_the_job_name_through_a_pattern_key(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    uat, other = home.job("deploy-uat3"), home.job("deploy-sandbox", "pipeline")
    cfg = make_config(tmp_path, home, compass)
    cfg["compass"]["deployments"] = [
        {
            "match": "deploy-*",
            "environment_from_job": "^deploy-(?P<env>[a-z0-9]+)$",
            "environments": {
                "prod*": {"category": "PRODUCTION", "name": "production"},
                "UAT*": {"category": "STAGING", "name": "uat", "id": "uat"},
            },
        }
    ]
    daemon_factory(cfg)
    uat.start().finish("SUCCESS")
    other.start().finish("SUCCESS")

    def arrived(_: object) -> bool:
        deployments = compass.deployments()
        wanted = ("deploy-uat3#1", "deploy-sandbox#1")
        return all(p in deployments and _final(deployments[p])["state"] == "SUCCESSFUL" for p in wanted)

    compass.wait_for(arrived, timeout=15)
    assert compass.invalid == [], "every body valid against its schema"
    deployments = compass.deployments()
    assert _final(deployments["deploy-uat3#1"])["environment"] == {
        "category": "STAGING",
        "displayName": "uat",
        "environmentId": "uat",
    }
    assert _final(deployments["deploy-sandbox#1"])["environment"] == {
        "category": "UNMAPPED",
        "displayName": "sandbox",
        "environmentId": "sandbox",
    }, "a value no key matches: UNMAPPED, under the value"
    assert compass.builds() == {}, "every run of these jobs is a deployment"


def test_backfill_sends_past_deployments_as_deployments(
    tmp_path: Path, home: JenkinsHome, compass: FakeCompass, daemon_factory: DaemonFactory
) -> None:
    now = int(time.time() * 1000)
    deploy, app = home.job("deploy-web"), home.job("app")
    for hours_ago in (30, 20, 10):
        deploy.start(start_ms=now - hours_ago * HOUR_MS).finish("SUCCESS", duration_ms=90_000)
        app.start(start_ms=now - hours_ago * HOUR_MS).finish("FAILURE", duration_ms=60_000)
    daemon = daemon_factory(_config(tmp_path, home, compass), start=False)
    daemon.start()
    assert daemon.stop() == 0  # the first start: history is not news
    assert compass.events == []
    env = dict(os.environ, COMPASS_API_TOKEN=TOKEN)
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "backfill", "--config", str(daemon.config_path), "--since", "2d"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert compass.invalid == []
    assert sorted(compass.deployments()) == ["deploy-web#1", "deploy-web#2", "deploy-web#3"]
    assert sorted(compass.builds()) == ["app#1", "app#2", "app#3"]
    first = properties_of(compass.deployments()["deploy-web#1"][0])
    assert (first["state"], first["environment"]["environmentId"], first["sequenceNumber"]) == (
        "SUCCESSFUL",
        "prod",
        1,
    )
