"""``compass setup`` attaches exactly what the daemon sends to: the same event source ids, components
and event types, for every job of every source.

Both questions, which component and which event source a run goes to, and whether a run of a job can
be a deployment, are answered by the settings; setup's plan and the events are checked against each
other here through the real command (in process) and the real event rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon import cli
from daemon.config import load_settings
from daemon.events import RunFacts, next_update
from daemon.sinks.compass.render import build_event
from tools.fake_compass import FakeCompass
from tools.fake_jenkins import JenkinsHome

HOST = "build01.example.com"
COMP_WEB = "ari:cloud:compass:cloud-123:component/web"
COMP_API = "ari:cloud:compass:cloud-123:component/api"
PROD = {"category": "PRODUCTION", "name": "production"}


@pytest.fixture
def compass_options() -> dict[str, Any]:
    return {"graphql_schema": False}


@pytest.fixture
def compass(compass: FakeCompass) -> FakeCompass:
    """The shared fake with the two components the rules name."""
    compass.add_component(COMP_WEB)
    compass.add_component(COMP_API)
    return compass


def _config(tmp_path: Path, compass: FakeCompass, homes: dict[str, JenkinsHome]) -> Path:
    cfg: dict[str, Any] = {
        "host": HOST,
        "state_dir": str(tmp_path / "state"),
        "sources": [{"type": "jenkins", "name": name, "home": str(h.root)} for name, h in homes.items()],
        "compass": {
            "base_url": compass.base_url,
            "cloud_id": compass.cloud_id,
            "email": compass.email,
            "api_token": compass.token,
            "timeout": "3s",
            "event_source": "{host}/{job}",
            "components": [
                {"match": "*-api", "component_id": COMP_API},
                {"match": "**", "component_id": COMP_WEB},
            ],
            # only the release server's deploy jobs deploy; the CI server's are builds of the same name
            "deployments": [{"match": "deploy-*", "source": "release", "environment": PROD}],
        },
    }
    path = tmp_path / "buildtail.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _sent(path: Path, jobs: dict[str, list[str]]) -> set[tuple[str, str | None, str]]:
    """(externalEventSourceId, componentId, event type) of a finished run of each job, as the daemon
    would send it."""
    settings = load_settings(path)
    sent: set[tuple[str, str | None, str]] = set()
    for source, names in jobs.items():
        for job in names:
            facts = RunFacts(
                source=source,
                job=job,
                number=1,
                running=False,
                start_ms=1_700_000_000_000,
                start_is_exact=True,
                result="SUCCESS",
                end_ms=1_700_000_060_000,
            )
            update = next_update(facts, None, settings, taken=lambda _: False)
            assert update is not None
            body = build_event(update, 0, settings)
            ((kind, event),) = body["event"].items()
            sent.add((event["externalEventSourceId"], body.get("componentId"), kind.upper()))
    return sent


def _attached(compass: FakeCompass) -> set[tuple[str, str | None, str]]:
    by_id = {s["id"]: s for s in compass.event_sources()}
    return {
        (by_id[sid]["externalEventSourceId"], component, by_id[sid]["eventType"])
        for component, ids in compass.components().items()
        for sid in ids
    }


def test_setup_attaches_what_the_daemon_sends_with_a_deployment_rule_of_one_source(
    tmp_path: Path, compass: FakeCompass
) -> None:
    jobs = {"ci": ["deploy-web", "build-api"], "release": ["deploy-api"]}
    homes = {name: JenkinsHome(tmp_path / name) for name in jobs}
    for name, names in jobs.items():
        for job in names:
            homes[name].job(job)
    path = _config(tmp_path, compass, homes)

    assert cli.main(["compass", "setup", "--config", str(path)]) == 0

    sent = _sent(path, jobs)
    assert (f"{HOST}/deploy-web", COMP_WEB, "BUILD") in sent, "the CI server's deploy job is a build"
    assert (f"{HOST}/deploy-api", COMP_API, "DEPLOYMENT") in sent
    assert _attached(compass) == sent
