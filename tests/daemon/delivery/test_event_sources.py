"""Event sources and derived metrics in process: which sources a configuration sends to (and which
event types), ``setup``, ``doctor`` and the auto-setup of a refused event.

Every test talks to the local fake Compass (its GraphQL registry) over real HTTP, once with the fake
executing requests against Atlassian's published schema (when it is there) and once answering by hand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.delivery.delivery import Delivery
from daemon.sinks.compass.admin import Target, doctor, setup, targets
from daemon.sinks.compass.graphql import CompassGraphQL, GraphQLError
from daemon.store import Store
from tools import fake_compass
from tools.daemon_process import REPO
from tools.fake_compass import FakeCompass

HOST = "build01.example.com"
COMP_API = "ari:cloud:compass:cloud-123:component/api"
COMP_WEB = "ari:cloud:compass:cloud-123:component/web"
PROD = {"category": "PRODUCTION", "name": "production"}
DEPLOY_JOBS = [{"match": "deploy-*", "environment": PROD}]
DEPLOYMENT_SCHEMA = REPO.parent / "shared" / "reference" / "compass-deployment-event.schema.json"


@pytest.fixture
def compass_options(graphql_schema: bool) -> dict[str, Any]:
    return {"graphql_schema": graphql_schema}


def make_settings(
    tmp_path: Path,
    compass: FakeCompass | None = None,
    *,
    template: str = "{host}",
    components: Sequence[tuple[str, str]] = (),
    **overrides: Any,
) -> Settings:
    home = tmp_path / "jenkins"
    home.mkdir(exist_ok=True)
    section: dict[str, Any] = {
        "base_url": compass.base_url if compass else "https://example.atlassian.net/gateway/api",
        "cloud_id": compass.cloud_id if compass else "cloud-123",
        "email": compass.email if compass else "ci-bot@example.com",
        "api_token": compass.token if compass else "test-token",
        "event_source": template,
        "components": [{"match": m, "component_id": c} for m, c in components],
        "timeout": "3s",
        "rate_limit_per_minute": 6000,
        "burst": 100,
        **overrides,
    }
    return Settings.model_validate(
        {
            "host": HOST,
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(home)}],
            "compass": section,
        }
    )


ClientFactory = Callable[[Settings], CompassGraphQL]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFactory]:
    made: list[CompassGraphQL] = []

    def make(settings: Settings) -> CompassGraphQL:
        assert settings.compass is not None
        client = CompassGraphQL(settings.compass)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def mutation_count(compass: FakeCompass) -> dict[str, int]:
    counts = {"createEventSource": 0, "attachEventSource": 0, "createMetricSource": 0}
    for request in compass.graphql_requests:
        if request.field in counts:
            counts[request.field] += 1
    return counts


def problems_of(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("PROBLEM")]


def connect_in_ui(compass: FakeCompass, component: str, *event_types: str) -> None:
    """The derived metrics of these event types, connected to the component as in Compass's UI."""
    for definition, (_, kind) in fake_compass.DERIVED_DEFINITIONS.items():
        if kind in event_types:
            compass.add_metric_source(component, definition)


def sources_of(compass: FakeCompass) -> dict[tuple[str, str], str]:
    """(externalEventSourceId, eventType) -> id of every event source."""
    return {(s["externalEventSourceId"], s["eventType"]): s["id"] for s in compass.event_sources()}


def jenkins_jobs(*names: str) -> list[tuple[str, str]]:
    """(source, job) pairs of jobs in the one Jenkins source of ``make_settings``."""
    return [("jenkins", name) for name in names]


# --- targets ------------------------------------------------------------------------------------------


def test_targets_per_host_template_attaches_one_source_to_each_mapped_component(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, components=[("team/**", COMP_API), ("web", COMP_WEB), ("api-*", COMP_API)]
    )
    assert targets(settings, jenkins_jobs("team/a", "web", "unmapped")) == [
        Target(HOST, COMP_API),
        Target(HOST, COMP_WEB),
    ]
    assert targets(settings, []) == [Target(HOST, COMP_API), Target(HOST, COMP_WEB)], "jobs do not matter"


def test_targets_per_host_template_without_components(tmp_path: Path) -> None:
    assert targets(make_settings(tmp_path), jenkins_jobs("a", "b")) == [Target(HOST, None)]
    fixed = make_settings(tmp_path, template="jenkins-prod")
    assert targets(fixed, jenkins_jobs("a")) == [Target("jenkins-prod", None)]


def test_targets_job_template_gives_each_job_its_own_source_and_component(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, template="{host}/{job}", components=[("team/**", COMP_API), ("web", COMP_WEB)]
    )
    assert targets(settings, jenkins_jobs("team/api", "web", "other", "team/api")) == [
        Target(f"{HOST}/team/api", COMP_API),
        Target(f"{HOST}/web", COMP_WEB),
        Target(f"{HOST}/other", None),
    ]


def test_targets_per_host_template_with_deployments_sends_both_types_everywhere(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, components=[("api", COMP_API), ("web", COMP_WEB)], deployments=DEPLOY_JOBS
    )
    both = ("BUILD", "DEPLOYMENT")
    assert targets(settings, jenkins_jobs("api")) == [
        Target(HOST, COMP_API, both),
        Target(HOST, COMP_WEB, both),
    ]
    assert targets(make_settings(tmp_path, deployments=DEPLOY_JOBS), []) == [Target(HOST, None, both)]


def test_targets_job_template_deployments_only_for_the_jobs_a_rule_matches(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        template="{host}/{job}",
        components=[("*-api", COMP_API), ("**", COMP_WEB)],
        deployments=[
            *DEPLOY_JOBS,
            {"match": "release", "environment_parameter": "TARGET", "environments": {"prod": PROD}},
        ],
    )
    assert targets(settings, jenkins_jobs("deploy-api", "build-api", "release", "web", "deploy-api")) == [
        Target(f"{HOST}/deploy-api", COMP_API, ("DEPLOYMENT",)),  # a fixed environment: never a build
        Target(f"{HOST}/build-api", COMP_API, ("BUILD",)),
        Target(f"{HOST}/release", COMP_WEB, ("BUILD", "DEPLOYMENT")),
        Target(f"{HOST}/web", COMP_WEB, ("BUILD",)),
    ]


# --- setup --------------------------------------------------------------------------------------------


async def test_setup_creates_and_attaches_then_changes_nothing(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    wanted = targets(settings, jenkins_jobs("app"))
    lines = await setup(client_for(settings), compass.cloud_id, wanted)
    [source] = compass.event_sources()
    assert (source["externalEventSourceId"], source["eventType"]) == (HOST, "BUILD")
    assert compass.components() == {COMP_API: [source["id"]]}
    assert mutation_count(compass) == {
        "createEventSource": 1,
        "attachEventSource": 1,
        "createMetricSource": 2,
    }
    assert any(line.startswith("created event source") for line in lines), lines
    assert any(line.startswith("attached event source") for line in lines), lines
    assert f"connected metric Build Success Rate to {COMP_API} (derived from its build events)" in lines
    metrics = compass.metric_sources(COMP_API)

    again = await setup(client_for(settings), compass.cloud_id, wanted)
    assert mutation_count(compass) == {
        "createEventSource": 1,
        "attachEventSource": 1,
        "createMetricSource": 2,
    }, "idempotent"
    assert compass.event_sources() == [source]
    assert compass.metric_sources(COMP_API) == metrics
    assert any("exists" in line for line in again), again
    assert any("is attached to" in line for line in again), again
    assert f"metric Build Success Rate is connected to {COMP_API}" in again, again
    assert not any(line.startswith(("created", "attached")) for line in again), again


async def test_setup_job_template_creates_one_source_per_job(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.add_component(COMP_WEB)
    settings = make_settings(
        tmp_path, compass, template="{host}/{job}", components=[("api", COMP_API), ("web", COMP_WEB)]
    )
    await setup(client_for(settings), compass.cloud_id, targets(settings, jenkins_jobs("api", "web")))
    by_external = {s["externalEventSourceId"]: s["id"] for s in compass.event_sources()}
    assert set(by_external) == {f"{HOST}/api", f"{HOST}/web"}
    assert compass.components() == {
        COMP_API: [by_external[f"{HOST}/api"]],
        COMP_WEB: [by_external[f"{HOST}/web"]],
    }
    await setup(client_for(settings), compass.cloud_id, targets(settings, jenkins_jobs("api", "web")))
    assert mutation_count(compass) == {
        "createEventSource": 2,
        "attachEventSource": 2,
        "createMetricSource": 4,
    }


async def test_setup_creates_and_attaches_build_and_deployment_sources_once(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)], deployments=DEPLOY_JOBS)
    wanted = targets(settings, jenkins_jobs("deploy-api"))
    lines = await setup(client_for(settings), compass.cloud_id, wanted)
    sources = sources_of(compass)
    assert set(sources) == {(HOST, "BUILD"), (HOST, "DEPLOYMENT")}
    assert compass.components() == {COMP_API: [sources[(HOST, "BUILD")], sources[(HOST, "DEPLOYMENT")]]}
    assert f"created event source {HOST!r} (type DEPLOYMENT)" in lines, lines
    assert f"attached event source {HOST!r} (type DEPLOYMENT) to {COMP_API}" in lines, lines
    created = [
        r.variables["input"]["eventType"] for r in compass.mutations() if r.field == "createEventSource"
    ]
    assert created == ["BUILD", "DEPLOYMENT"]

    before = len(compass.mutations())
    again = await setup(client_for(settings), compass.cloud_id, wanted)
    assert len(compass.mutations()) == before, "the second run sent a mutation"
    assert f"event source {HOST!r} (type DEPLOYMENT) is attached to {COMP_API}" in again, again


async def test_setup_adds_the_deployment_source_beside_the_build_source(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    """Deployments configured after builds were set up: only the DEPLOYMENT source is new."""
    compass.add_component(COMP_API)
    build = compass.add_event_source(HOST, "BUILD")
    compass.attach(COMP_API, build)
    connect_in_ui(compass, COMP_API, "BUILD", "DEPLOYMENT")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)], deployments=DEPLOY_JOBS)
    await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    deployment = compass.find_event_source(HOST, "DEPLOYMENT")
    assert deployment is not None
    assert compass.components() == {COMP_API: [build, deployment["id"]]}
    assert mutation_count(compass) == {
        "createEventSource": 1,
        "attachEventSource": 1,
        "createMetricSource": 0,
    }


async def test_setup_a_custom_source_with_the_same_id_does_not_count(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    custom = compass.add_event_source(HOST, "CUSTOM")
    compass.attach(COMP_API, custom)
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    lines = await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    build = compass.find_event_source(HOST, "BUILD")
    assert build is not None and build["id"] != custom
    assert compass.components() == {COMP_API: [custom, build["id"]]}
    assert any(line.startswith("created event source") for line in lines), lines


async def test_setup_unmapped_source_is_created_and_explained(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    settings = make_settings(tmp_path, compass)
    lines = await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert compass.find_event_source(HOST) is not None
    assert mutation_count(compass) == {
        "createEventSource": 1,
        "attachEventSource": 0,
        "createMetricSource": 0,
    }
    assert any("not mapped to a component" in line for line in lines), lines


async def test_setup_unknown_component_is_an_error(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    settings = make_settings(
        tmp_path, compass, components=[("**", "ari:cloud:compass:cloud-123:component/gone")]
    )
    with pytest.raises(GraphQLError, match="component/gone"):
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert compass.components() == {}


async def test_setup_wrong_cloud_id_is_an_error(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    settings = make_settings(tmp_path, compass, cloud_id="another-cloud")
    with pytest.raises(GraphQLError):
        await setup(client_for(settings), "another-cloud", targets(settings, []))
    assert compass.event_sources() == []


async def test_bad_token_is_an_error_with_the_status(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    settings = make_settings(tmp_path, compass, api_token="not-the-token")
    with pytest.raises(GraphQLError, match="credentials") as caught:
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert caught.value.status == 401
    assert "not-the-token" not in str(caught.value)


async def test_setup_stops_on_an_error_beside_partial_data(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    """``eventSource: null`` beside "lacks scope" is not "not found": nothing may be created."""
    compass.add_component(COMP_API)
    compass.fail_graphql("eventSource", "the API token lacks the scope read:event:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    with pytest.raises(GraphQLError, match="lacks the scope read:event:compass") as caught:
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert caught.value.status == 403
    assert compass.mutations() == [] and compass.event_sources() == []
    [request] = compass.graphql_requests
    assert request.answer is not None and request.answer["data"]["compass"]["eventSource"] is None


async def test_setup_stops_when_the_component_cannot_be_read(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.fail_graphql("component", "the API token lacks the scope read:component:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    with pytest.raises(GraphQLError, match="read:component:compass"):
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert mutation_count(compass) == {
        "createEventSource": 1,
        "attachEventSource": 0,
        "createMetricSource": 0,
    }


async def test_every_graphql_call_spends_the_budget(tmp_path: Path, compass: FakeCompass) -> None:
    compass.add_component(COMP_API)
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    bucket = TokenBucket(0, 1)  # disabled: no waiting, but every request is counted
    client = CompassGraphQL(settings.compass, bucket)
    try:
        await setup(client, compass.cloud_id, targets(settings, []))
    finally:
        await client.close()
    # find, create, component, attach; metricSources, createMetricSource x2
    assert bucket.spent == len(compass.graphql_requests) == 7


# --- derived metrics ------------------------------------------------------------------------------


def definitions(compass: FakeCompass, component: str) -> list[str]:
    """The short names of the definitions connected to the component, in creation order."""
    return [m["metricDefinitionId"].rsplit("/", 1)[-1] for m in compass.metric_sources(component)]


async def test_setup_connects_the_four_derived_metrics_with_deployments(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.add_component(COMP_WEB)
    settings = make_settings(
        tmp_path, compass, components=[("api", COMP_API), ("web", COMP_WEB)], deployments=DEPLOY_JOBS
    )
    lines = await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    four = [
        "build-success-rate",
        "build-time-avg-last-10",
        "weekly-deployment-frequency-28d",
        "deployment-time-avg-last-25",
    ]
    assert definitions(compass, COMP_API) == definitions(compass, COMP_WEB) == four
    for metric in compass.metric_sources(COMP_WEB):
        short = metric["metricDefinitionId"].rsplit("/", 1)[-1]
        assert metric["derived"] is True
        assert metric["externalMetricSourceId"] == f"buildtail:{short}:{COMP_WEB}"
    assert (
        f"connected metric Deployment Frequency to {COMP_WEB} (derived from its deployment events)" in lines
    )

    before = len(compass.mutations())
    again = await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert len(compass.mutations()) == before, "the second run sent a mutation"
    assert sum("is connected to" in line for line in again) == 8, again


async def test_setup_keeps_a_metric_connected_elsewhere(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    """Build Success Rate connected in the UI (another external id): only Build Time is added, and
    the second metric source Compass would refuse is never asked for."""
    compass.add_component(COMP_API)
    ui = compass.add_metric_source(
        COMP_API, fake_compass.BUILTIN_METRICS + "build-success-rate", "from-the-ui"
    )
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    lines = await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    first = compass.metric_sources(COMP_API)[0]
    assert (first["id"], first["externalMetricSourceId"]) == (ui, "from-the-ui"), "left as it was"
    assert definitions(compass, COMP_API) == ["build-success-rate", "build-time-avg-last-10"]
    assert mutation_count(compass)["createMetricSource"] == 1
    assert f"metric Build Success Rate is connected to {COMP_API}" in lines


async def test_setup_reads_every_page_of_metric_sources(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    for n in range(11):
        compass.add_metric_source(
            COMP_API, f"ari:cloud:compass:cloud-123:metric-definition/custom/{n}", derived=False
        )
    connect_in_ui(compass, COMP_API, "BUILD")  # the 12th and 13th: on the second page
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert mutation_count(compass)["createMetricSource"] == 0
    pages = [r.variables for r in compass.graphql_requests if r.operation == "buildtailMetricSources"]
    assert [p["after"] for p in pages] == [None, "cursor:9"]


async def test_setup_job_template_connects_each_metric_once_per_component(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    """Two jobs, two event sources, one component: Compass derives the metric from the component's
    events, so there is one metric source per definition."""
    compass.add_component(COMP_API)
    settings = make_settings(tmp_path, compass, template="{host}/{job}", components=[("**", COMP_API)])
    await setup(client_for(settings), compass.cloud_id, targets(settings, jenkins_jobs("api-1", "api-2")))
    assert len(compass.components()[COMP_API]) == 2
    assert definitions(compass, COMP_API) == ["build-success-rate", "build-time-avg-last-10"]


async def test_setup_connects_no_metric_without_a_component(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    settings = make_settings(tmp_path, compass, deployments=DEPLOY_JOBS)
    await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert mutation_count(compass) == {
        "createEventSource": 2,
        "attachEventSource": 0,
        "createMetricSource": 0,
    }
    assert "buildtailMetricSources" not in {r.operation for r in compass.graphql_requests}


async def test_setup_stops_when_metric_sources_cannot_be_read(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    """``metricSources: null`` beside an error is not "none connected": nothing may be created."""
    compass.add_component(COMP_API)
    compass.fail_graphql("metricSources", "the API token lacks the scope read:metric:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    with pytest.raises(GraphQLError, match="lacks the scope read:metric:compass") as caught:
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert caught.value.status == 403
    assert mutation_count(compass)["createMetricSource"] == 0 and compass.metric_sources(COMP_API) == []


async def test_setup_reports_a_refused_metric_source(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.fail_graphql("createMetricSource", "the API token lacks the scope write:metric:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    with pytest.raises(GraphQLError, match="write:metric:compass"):
        await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert compass.metric_sources(COMP_API) == []


async def test_doctor_reports_a_component_without_its_metrics(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "BUILD"))
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert (
        f"component {COMP_API} receives build events but has no Build Success Rate or Build Time" in problem
    )
    assert problem.endswith("Fix: run `buildtail compass setup --config PATH`")

    compass.add_metric_source(COMP_API, fake_compass.BUILTIN_METRICS + "build-success-rate", "from-the-ui")
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    [problem] = problems_of(lines)
    assert "no Build Time metric" in problem and "Success Rate" not in problem
    assert compass.mutations() == []


async def test_doctor_reports_missing_deployment_metrics(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    for kind in ("BUILD", "DEPLOYMENT"):
        compass.attach(COMP_API, compass.add_event_source(HOST, kind))
    connect_in_ui(compass, COMP_API, "BUILD")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)], deployments=DEPLOY_JOBS)
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert "receives deployment events but has no Deployment Frequency or Deployment Time metric" in problem
    assert "buildtail compass setup --config PATH" in problem
    assert any("has the metrics its build events feed (Build Success Rate, Build Time)" in x for x in lines)

    await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    assert (await doctor(client_for(settings), settings.compass, targets(settings, [])))[1] == 0


async def test_doctor_reports_unreadable_metrics(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "BUILD"))
    connect_in_ui(compass, COMP_API, "BUILD")
    compass.fail_graphql("metricSources", "the API token lacks the scope read:metric:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert "read:metric:compass" in problem and "API token" in problem
    assert "has no" not in problem


# --- auto-setup on a 404 -------------------------------------------------------------------------------


def deployment_body(external: str, component: str | None) -> dict[str, Any]:
    """A deployment event as Compass's ``event.deployment`` has it."""
    body: dict[str, Any] = {
        "cloudId": "cloud-123",
        "event": {
            "deployment": {
                "displayName": "deploy-api #7",
                "lastUpdated": "2026-11-26T10:00:05.000Z",
                "updateSequenceNumber": 1764151205000,
                "description": "SUCCESS in 5s",
                "url": "https://jenkins.example.com/job/deploy-api/7/",
                "externalEventSourceId": external,
                "deploymentProperties": {
                    "sequenceNumber": 7,
                    "state": "SUCCESSFUL",
                    "pipeline": {
                        "pipelineId": "deploy-api",
                        "url": "https://jenkins.example.com/job/deploy-api/",
                        "displayName": "deploy-api",
                    },
                    "environment": {"category": "PRODUCTION", "displayName": "production",
                                    "environmentId": "production"},
                    "startedAt": "2026-11-26T10:00:00.000Z",
                    "completedAt": "2026-11-26T10:00:05.000Z",
                },
            }
        },
    }  # fmt: skip
    if component is not None:
        body["componentId"] = component
    return body


def test_the_deployment_sample_is_a_compass_deployment_event() -> None:
    if not DEPLOYMENT_SCHEMA.exists():
        pytest.skip(f"the reference is not there ({DEPLOYMENT_SCHEMA})")
    schema = json.loads(DEPLOYMENT_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(deployment_body(HOST, COMP_API), schema)


async def test_auto_setup_creates_the_source_of_the_refused_events_type(
    tmp_path: Path, compass: FakeCompass
) -> None:
    """A 404 for a deployment creates and attaches the DEPLOYMENT source (a build's BUILD source is
    not enough); the derived metrics are left to ``compass setup``."""
    compass.add_component(COMP_API)
    compass.attach(COMP_API, compass.add_event_source(HOST, "BUILD"))
    settings = make_settings(
        tmp_path, compass, components=[("**", COMP_API)], deployments=DEPLOY_JOBS, auto_setup=True
    )
    store = Store(settings.state_dir)
    delivery = Delivery(settings, store)
    try:
        assert await delivery.sinks[0].create_missing(deployment_body(HOST, COMP_API)) is True
        deployment = compass.find_event_source(HOST, "DEPLOYMENT")
        assert deployment is not None and deployment["id"] in compass.components()[COMP_API]
        assert [r.field for r in compass.mutations()] == ["createEventSource", "attachEventSource"]
        assert [r.variables["eventType"] for r in compass.graphql_requests if r.field == "eventSource"] == [
            "DEPLOYMENT"
        ]
        assert compass.metric_sources(COMP_API) == []

        # in place already: the 404 has another cause, so no resend at once (delivery pauses)
        assert await delivery.sinks[0].create_missing(deployment_body(HOST, COMP_API)) is False
        assert len(compass.mutations()) == 2

        # a deployment without componentId: the source is created, there is nothing to attach to
        other = deployment_body("build02.example.com", None)
        assert await delivery.sinks[0].create_missing(other) is True
        assert compass.find_event_source("build02.example.com", "DEPLOYMENT") is not None
        assert compass.find_event_source("build02.example.com", "BUILD") is None
    finally:
        await delivery.close()
        store.close()


async def test_auto_setup_of_a_build_event_creates_a_build_source(
    tmp_path: Path, compass: FakeCompass
) -> None:
    settings = make_settings(tmp_path, compass, deployments=DEPLOY_JOBS, auto_setup=True)
    store = Store(settings.state_dir)
    delivery = Delivery(settings, store)
    build = {"cloudId": "cloud-123", "event": {"build": {"externalEventSourceId": HOST}}}
    try:
        assert await delivery.sinks[0].create_missing(build) is True
        assert set(sources_of(compass)) == {(HOST, "BUILD")}
        unknown = {"cloudId": "cloud-123", "event": {"weather": {"externalEventSourceId": HOST}}}
        assert await delivery.sinks[0].create_missing(unknown) is False
        assert len(compass.mutations()) == 1
    finally:
        await delivery.close()
        store.close()


async def test_without_auto_setup_a_404_touches_nothing(tmp_path: Path, compass: FakeCompass) -> None:
    settings = make_settings(tmp_path, compass, deployments=DEPLOY_JOBS)
    store = Store(settings.state_dir)
    delivery = Delivery(settings, store)
    try:
        assert await delivery.sinks[0].create_missing(deployment_body(HOST, None)) is False
        assert compass.graphql_requests == []
    finally:
        await delivery.close()
        store.close()


# --- doctor -------------------------------------------------------------------------------------------


async def test_doctor_healthy_setup_has_no_problems(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.attach(COMP_API, compass.add_event_source(HOST, "BUILD"))
    connect_in_ui(compass, COMP_API, "BUILD")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 0, lines
    assert problems_of(lines) == []
    assert compass.tenant_info_requests == 1
    assert compass.mutations() == []


async def test_doctor_wrong_cloud_id(tmp_path: Path, compass: FakeCompass, client_for: ClientFactory) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "BUILD"))
    settings = make_settings(tmp_path, compass, cloud_id="another-cloud", components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems >= 1
    assert any("cloudId" in p and "cloud-123" in p and "another-cloud" in p for p in problems_of(lines)), (
        lines
    )
    assert compass.mutations() == []


async def test_doctor_bad_token(tmp_path: Path, compass: FakeCompass, client_for: ClientFactory) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "BUILD"))
    settings = make_settings(tmp_path, compass, api_token="not-the-token", components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems >= 1
    assert any("credentials" in p and "API token" in p for p in problems_of(lines)), lines
    assert not any("the credentials work" in line for line in lines), lines
    assert "not-the-token" not in "\n".join(lines)
    assert compass.mutations() == []


@pytest.mark.parametrize("other", ["CUSTOM", "VULNERABILITY"])
async def test_doctor_custom_source_only_explains_the_grey_icon(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory, other: str
) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, other))
    connect_in_ui(compass, COMP_API, "BUILD")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert f"only with type {other}, not BUILD" in problem
    assert "grey" in problem and "buildtail compass setup" in problem
    assert f"detach the {other} source" in problem
    assert compass.mutations() == []
    assert compass.find_event_source(HOST) is None


async def test_doctor_reports_an_error_beside_partial_data(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "BUILD"))
    compass.fail_graphql("eventSource", "the API token lacks the scope read:event:compass")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert "lacks the scope read:event:compass" in problem and "API token" in problem
    assert not any("exists" in line or "does not exist" in line for line in lines), lines


async def test_doctor_missing_source(tmp_path: Path, compass: FakeCompass, client_for: ClientFactory) -> None:
    settings = make_settings(tmp_path, compass)
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    assert "buildtail compass setup" in problems_of(lines)[0]
    assert "grey" not in problems_of(lines)[0]
    assert compass.mutations() == []


async def test_doctor_source_not_attached(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.add_component(COMP_API)
    compass.add_component(COMP_WEB)
    source = compass.add_event_source(HOST, "BUILD")
    compass.attach(COMP_API, source)
    connect_in_ui(compass, COMP_API, "BUILD")
    connect_in_ui(compass, COMP_WEB, "BUILD")
    settings = make_settings(tmp_path, compass, components=[("api", COMP_API), ("web", COMP_WEB)])
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 1, lines
    [problem] = problems_of(lines)
    assert "not attached" in problem and COMP_WEB in problem and "buildtail compass setup" in problem
    assert compass.mutations() == []
    assert compass.components() == {COMP_API: [source], COMP_WEB: []}


async def test_doctor_then_setup_then_doctor(
    tmp_path: Path, compass: FakeCompass, client_for: ClientFactory
) -> None:
    compass.attach(compass.add_component(COMP_API), compass.add_event_source(HOST, "CUSTOM"))
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)])
    assert settings.compass is not None
    wanted = targets(settings, [])
    assert (await doctor(client_for(settings), settings.compass, wanted))[1] == 2  # grey icon, metrics
    await setup(client_for(settings), compass.cloud_id, wanted)
    lines, problems = await doctor(client_for(settings), settings.compass, wanted)
    assert problems == 0, lines


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (("BUILD",), ["only with type BUILD, not DEPLOYMENT"]),
        (("CUSTOM",), ["only with type CUSTOM, not BUILD", "only with type CUSTOM, not DEPLOYMENT"]),
        (("BUILD", "CUSTOM"), ["only with type BUILD, CUSTOM, not DEPLOYMENT"]),
    ],
    ids=["build-only", "custom-only", "build-and-custom"],
)
async def test_doctor_explains_a_deployment_source_of_the_wrong_type(
    tmp_path: Path,
    compass: FakeCompass,
    client_for: ClientFactory,
    existing: tuple[str, ...],
    expected: list[str],
) -> None:
    compass.add_component(COMP_API)
    for kind in existing:
        compass.attach(COMP_API, compass.add_event_source(HOST, kind))
    connect_in_ui(compass, COMP_API, "BUILD", "DEPLOYMENT")
    settings = make_settings(tmp_path, compass, components=[("**", COMP_API)], deployments=DEPLOY_JOBS)
    assert settings.compass is not None
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    found = problems_of(lines)
    assert problems == len(found) == len(expected), lines
    for problem, text in zip(found, expected, strict=True):
        assert text in problem, problem
        assert "buildtail compass setup --config PATH" in problem
    deployment = found[-1]
    assert "Deployment Frequency" in deployment and "creates the DEPLOYMENT source" in deployment
    # the CUSTOM source is the copied example to detach; a BUILD source is still needed
    assert ("detach the CUSTOM source" in deployment) == ("CUSTOM" in existing)
    assert "detach the BUILD" not in "\n".join(lines)
    assert compass.mutations() == []

    await setup(client_for(settings), compass.cloud_id, targets(settings, []))
    lines, problems = await doctor(client_for(settings), settings.compass, targets(settings, []))
    assert problems == 0, lines
    assert f"ok       event source {HOST!r} exists with type DEPLOYMENT" in lines
    assert f"ok       event source {HOST!r} (type DEPLOYMENT) is attached to {COMP_API}" in lines
