"""Jira's build and deployment items, rendered from the updates the event rules really make.

The mapping is tested on its own (no schema needed), and every rendered body is checked by the same
contract check the fake Jira applies: the shared reference schemas when they sit next to the
checkout, else the structural check.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon import events
from daemon.config.deployments import Environment
from daemon.sinks.jira.render import (
    BUILD_STATES,
    DEPLOYMENT_STATES,
    MAX_ITEMS,
    JiraRender,
    NoIssueKeys,
    build_item,
    bulk_body,
    deployment_item,
    jira_state,
)
from parsers.result_file import TestSummary
from parsers.vocabulary import BUILD_STATES as BUILDTAIL_BUILD_STATES
from parsers.vocabulary import DEPLOYMENT_STATES as BUILDTAIL_DEPLOYMENT_STATES
from tools.fake_jira import check_body, schemas_present

from .test_events import DEPLOYS, facts, finished, never, settings

RENDER = JiraRender(server_url="https://jenkins.example.com/", instance="ci-host-1")


def valid(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    body = bulk_body(kind, items, RENDER)
    for use_schema in (True, False):
        problems = check_body(kind, body, use_schema=use_schema)
        assert problems.ok, (use_schema, problems)
    return body


def test_every_buildtail_state_has_a_jira_state() -> None:
    assert {s: jira_state(s, "build") for s in BUILDTAIL_BUILD_STATES} == {
        "IN_PROGRESS": "in_progress",
        "SUCCESSFUL": "successful",
        "CANCELLED": "cancelled",
        "FAILED": "failed",
        "ERROR": "failed",
        "TIMED_OUT": "failed",
        "UNKNOWN": "unknown",
    }
    assert {s: jira_state(s, "deployment") for s in BUILDTAIL_DEPLOYMENT_STATES} == {
        "IN_PROGRESS": "in_progress",
        "SUCCESSFUL": "successful",
        "CANCELLED": "cancelled",
        "FAILED": "failed",
        "ROLLED_BACK": "rolled_back",
        "UNKNOWN": "unknown",
    }
    assert jira_state("ROLLED_BACK", "build") == "failed"
    assert jira_state("PENDING", "build") == "pending"
    assert jira_state("SOMETHING NEW", "deployment") == "unknown"
    assert set(map(jira_state, BUILDTAIL_BUILD_STATES, ["build"] * 7)) <= set(BUILD_STATES)
    assert {jira_state(s, "deployment") for s in BUILDTAIL_DEPLOYMENT_STATES} <= set(DEPLOYMENT_STATES)


def test_a_build_from_start_to_end(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    first = events.next_update(facts(commit="abc123", branch="feature/OPS-7"), None, cfg, taken=never)
    assert first is not None
    running = build_item(first, ["OPS-7"], 41, RENDER)
    assert running == {
        "schemaVersion": "1.0",
        "pipelineId": "jenkins/team/app",
        "buildNumber": 3,
        "updateSequenceNumber": 41,
        "displayName": "team/app #3",
        "url": "https://jenkins.example.com/job/team/job/app/3/",
        "state": "in_progress",
        "lastUpdated": events.iso_ms(first.at_ms),
        "issueKeys": ["OPS-7"],
    }
    done = events.next_update(finished("FAILURE", display_name="#3 nightly"), first.run, cfg, taken=never)
    assert done is not None
    tests = TestSummary(tests=10, failures=2, errors=1, skipped=3, time_s=None)
    final = build_item(
        done, ["OPS-7", "OPS-8"], 42, RENDER, tests=tests, repository="https://git.example.com/app.git"
    )
    assert final["state"] == "failed" and final["updateSequenceNumber"] == 42
    assert final["pipelineId"] == running["pipelineId"] and final["buildNumber"] == 3
    assert final["label"] == "#3 nightly" and final["displayName"] == "team/app #3 nightly"
    assert final["testInfo"] == {"totalNumber": 10, "numberPassed": 4, "numberFailed": 3, "numberSkipped": 3}
    assert "references" not in final  # this update's facts carry no commit
    valid("builds", [running, final])


def test_references_where_commit_branch_and_repository_are_known(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    update = events.next_update(finished(commit="abc123", branch="main"), None, cfg, taken=never)
    assert update is not None
    item = build_item(update, ["OPS-1"], 1, RENDER, repository="https://git.example.com/app.git")
    assert item["references"] == [
        {
            "commit": {"id": "abc123", "repositoryUri": "https://git.example.com/app.git"},
            "ref": {"name": "main", "uri": "https://git.example.com/app.git#main"},
        }
    ]
    assert "references" not in build_item(update, ["OPS-1"], 1, RENDER)  # no repository, no reference
    assert "testInfo" not in item
    valid("builds", [item])


def test_a_run_without_url_links_the_server_and_long_names_are_capped(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    long_job = "folder/" * 60 + "job"
    update = events.next_update(
        finished(job=long_job, run_url="", number="2026.11.30-7"), None, cfg, taken=never
    )
    assert update is not None
    item = build_item(update, ["OPS-1"], 1, RENDER)
    assert item["url"] == "https://jenkins.example.com/"
    assert len(item["pipelineId"]) == 255 and len(item["displayName"]) == 255
    assert item["buildNumber"] == 2026  # the number in the run id
    other = build_item(replace(update, facts=replace(update.facts, job=long_job + "2")), ["OPS-1"], 1, RENDER)
    assert other["pipelineId"] != item["pipelineId"]
    valid("builds", [item, other])


def test_no_keys_no_item_and_too_many_keys_are_refused(tmp_path: Path) -> None:
    update = events.next_update(facts(), None, settings(tmp_path), taken=never)
    assert update is not None
    with pytest.raises(NoIssueKeys):
        build_item(update, [], 1, RENDER)
    with pytest.raises(ValueError, match="at most 100"):
        build_item(update, [f"OPS-{n}" for n in range(101)], 1, RENDER)


def test_a_deployment_from_start_to_end(tmp_path: Path) -> None:
    cfg = settings(tmp_path, compass=DEPLOYS)
    run = facts(job="deploy-shop", number=12)
    first = events.next_update(run, None, cfg, taken=never)
    assert first is not None and first.run.kind == "deployment"
    env = events.environment(run, cfg)
    item = deployment_item(first, ["SHOP-1"], 7, RENDER, environment=env)
    assert item["deploymentSequenceNumber"] == 12 and item["updateSequenceNumber"] == 7
    assert item["state"] == "in_progress"
    assert item["environment"] == {"id": "prod", "displayName": "production", "type": "production"}
    assert item["pipeline"] == {
        "id": "jenkins/deploy-shop",
        "displayName": "deploy-shop",
        "url": "https://jenkins.example.com/job/team/job/app/",
    }
    assert item["displayName"] == "deploy-shop #12 to production"
    assert item["description"] == "deploy-shop #12 to production: running"
    done = events.next_update(finished(job="deploy-shop", number=12), first.run, cfg, taken=never)
    assert done is not None
    final = deployment_item(done, ["SHOP-1"], 8, RENDER, environment=env)
    assert final["state"] == "successful" and final["description"].endswith(": successful")
    valid("deployments", [item, final])


@pytest.mark.parametrize(
    ("category", "jira_type"),
    [
        ("PRODUCTION", "production"),
        ("STAGING", "staging"),
        ("TESTING", "testing"),
        ("DEVELOPMENT", "development"),
        ("UNMAPPED", "unmapped"),
    ],
)
def test_environment_categories_become_jira_types(tmp_path: Path, category: str, jira_type: str) -> None:
    update = events.next_update(finished(), None, settings(tmp_path), taken=never)
    assert update is not None
    env = Environment.model_validate({"category": category, "name": "qa-1"})
    item = deployment_item(update, ["OPS-1"], 1, RENDER, environment=env)
    assert item["environment"] == {"id": "qa-1", "displayName": "qa-1", "type": jira_type}
    valid("deployments", [item])


def test_the_environment_mapping_is_the_settings_and_checked(tmp_path: Path) -> None:
    update = events.next_update(finished(), None, settings(tmp_path), taken=never)
    assert update is not None
    staging_is_testing = replace(RENDER, environment_types={**RENDER.environment_types, "STAGING": "testing"})
    env = Environment.model_validate({"category": "STAGING", "name": "stage"})
    assert (
        deployment_item(update, ["OPS-1"], 1, staging_is_testing, environment=env)["environment"]["type"]
        == "testing"
    )
    unknown = deployment_item(update, ["OPS-1"], 1, RENDER, environment=None)["environment"]
    assert unknown == {"id": "unknown", "displayName": "unknown", "type": "unmapped"}
    with pytest.raises(ValueError, match="environment types"):
        JiraRender(server_url="https://ci/", environment_types={"PRODUCTION": "prod"})


def test_bulk_body_limits_and_metadata(tmp_path: Path) -> None:
    update = events.next_update(finished(), None, settings(tmp_path), taken=never)
    assert update is not None
    items = [
        build_item(replace(update, facts=replace(update.facts, number=n)), ["OPS-1"], n, RENDER)
        for n in range(100)
    ]
    body = valid("builds", items)
    assert body["properties"] == {"source": "buildtail", "instance": "ci-host-1"}
    assert body["providerMetadata"] == {"product": "buildtail"}
    assert len(body["builds"]) == MAX_ITEMS
    with pytest.raises(ValueError, match="1 to 100"):
        bulk_body("builds", [*items, items[0]], RENDER)
    with pytest.raises(ValueError, match="1 to 100"):
        bulk_body("deployments", [], RENDER)
    with pytest.raises(ValueError, match="builds or deployments"):
        bulk_body("features", items[:1], RENDER)


@pytest.mark.skipif(not schemas_present(), reason="the Jira reference schemas (../shared) are absent")
def test_the_reference_schemas_refuse_what_the_render_must_not_produce(tmp_path: Path) -> None:
    """The check is real: a body the schemas refuse is refused, item by item."""
    update = events.next_update(finished(), None, settings(tmp_path), taken=never)
    assert update is not None
    good = build_item(update, ["OPS-1"], 1, RENDER)
    bad = {**good, "state": "SUCCESSFUL", "issueKeys": ["ops 1"]}
    problems = check_body("builds", bulk_body("builds", [good, bad], RENDER))
    assert not problems.request and list(problems.items) == [1] and len(problems.items[1]) == 2
