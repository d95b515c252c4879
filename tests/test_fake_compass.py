"""The fake Compass accepts exactly the contract and can misbehave on demand."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]
import pytest

from daemon.sinks.compass.graphql import (
    Operation,
    attach_operation,
    component_operation,
    create_operation,
    find_operation,
)
from daemon.sinks.compass.metrics import (
    DERIVED_METRICS,
    create_metric_source_operation,
    metric_sources_operation,
)
from tools.fake_compass import SCHEMA_PATH, FakeCompass, Fault


def make_body(
    *, pipeline_id: str = "team/api#7", usn: int = 1, state: str = "SUCCESSFUL", cloud_id: str = "cloud-123"
) -> dict[str, Any]:
    return {
        "cloudId": cloud_id,
        "event": {
            "build": {
                "displayName": "team/api #7",
                "lastUpdated": "2026-11-20T10:00:05.000Z",
                "updateSequenceNumber": usn,
                "description": "SUCCESS in 5s",
                "url": "https://jenkins.example.com/job/team/job/api/7/",
                "externalEventSourceId": "jenkins.example.com",
                "buildProperties": {
                    "state": state,
                    "pipeline": {"pipelineId": pipeline_id, "url": None, "displayName": "team/api"},
                    "startedAt": "2026-11-20T10:00:00.000Z",
                    "completedAt": "2026-11-20T10:00:05.000Z",
                },
            }
        },
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


def headers(compass: FakeCompass) -> dict[str, str]:
    return {
        "Authorization": aiohttp.encode_basic_auth("ci-bot@example.com", "test-token"),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


async def post(
    session: aiohttp.ClientSession, compass: FakeCompass, body: Any, hdrs: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with session.post(
        compass.base_url + "/compass/v1/events", data=data, headers=hdrs or headers(compass)
    ) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


def test_project_schema_is_valid_2020_12_and_accepts_sample() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(make_body())


def test_base_url_shape(compass: FakeCompass) -> None:
    assert compass.base_url.startswith("http://127.0.0.1:")
    assert compass.base_url.endswith("/gateway/api")
    assert compass.port > 0


async def test_valid_body_is_accepted_and_recorded(
    compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    status, text, _ = await post(session, compass, make_body())
    assert (status, text) == (202, "")
    assert compass.events == [make_body()]
    assert compass.invalid == []
    req = compass.requests[0]
    assert req.status == 202 and req.method == "POST"
    assert req.headers["Content-Type"].startswith("application/json")
    assert req.headers["Authorization"].startswith("Basic ")


async def test_in_progress_without_completed_at_is_accepted(
    compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    body = make_body(state="IN_PROGRESS")
    del body["event"]["build"]["buildProperties"]["completedAt"]
    assert (await post(session, compass, body))[0] == 202
    body2 = make_body(state="IN_PROGRESS", usn=2)
    body2["event"]["build"]["buildProperties"]["completedAt"] = None
    body2["componentId"] = "ari:cloud:compass:cloud-123:component/abc/def"
    assert (await post(session, compass, body2))[0] == 202
    assert len(compass.events) == 2


def _mutations() -> list[tuple[str, Any]]:
    def bad(path: list[str], value: Any) -> dict[str, Any]:
        body = make_body()
        node: Any = body
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return body

    build = ["event", "build"]
    props = [*build, "buildProperties"]
    return [
        ("state not in enum", bad([*props, "state"], "SUCCESS")),
        ("displayName 256 chars", bad([*build, "displayName"], "x" * 256)),
        ("description 256 chars", bad([*build, "description"], "x" * 256)),
        ("bad date", bad([*props, "startedAt"], "2026-11-20 10:00:00")),
        ("impossible date", bad([*build, "lastUpdated"], "2026-02-30T10:00:00Z")),
        ("epoch number as date", bad([*props, "completedAt"], 1795000000000)),
        ("extra key in build", bad([*build, "extra"], "nope")),
        ("extra key in pipeline", bad([*props, "pipeline", "number"], 7)),
        ("extra top-level key", bad(["eventType"], "BUILD")),
        ("missing required url", bad([*build, "url"], KeyError)),
        ("missing startedAt", bad([*props, "startedAt"], KeyError)),
        ("negative sequence", bad([*build, "updateSequenceNumber"], -1)),
        ("sequence beyond int64", bad([*build, "updateSequenceNumber"], 2**63)),
        ("string sequence", bad([*build, "updateSequenceNumber"], "5")),
        ("wrong cloudId", make_body(cloud_id="another-cloud")),
    ]


@pytest.mark.parametrize(("label", "body"), _mutations(), ids=[m[0] for m in _mutations()])
async def test_schema_violation_is_rejected_400(
    compass: FakeCompass, session: aiohttp.ClientSession, label: str, body: dict[str, Any]
) -> None:
    status, text, _ = await post(session, compass, body)
    assert status == 400, label
    answer = json.loads(text)
    assert answer["errors"][0]["type"] == "FORMAT_INVALID"
    assert answer["errors"][0]["message"]
    assert compass.events == []
    [(rejected, message)] = compass.invalid
    assert rejected == body
    assert message == answer["errors"][0]["message"]


async def test_not_json_is_rejected(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    status, _, _ = await post(session, compass, "{not json")
    assert status == 400
    assert compass.invalid[0][0] == "{not json"


async def test_wrong_content_type_is_rejected(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    hdrs = {**headers(compass), "Content-Type": "text/plain"}
    status, _, _ = await post(session, compass, make_body(), hdrs)
    assert status == 415
    assert compass.events == [] and len(compass.invalid) == 1


@pytest.mark.parametrize(
    "auth",
    [None, "Basic " + "Y2ktYm90QGV4YW1wbGUuY29tOndyb25n", "Bearer test-token"],
    ids=["missing", "wrong-token", "bearer"],
)
async def test_bad_auth_is_401(
    compass: FakeCompass, session: aiohttp.ClientSession, auth: str | None
) -> None:
    hdrs = {"Content-Type": "application/json"}
    if auth is not None:
        hdrs["Authorization"] = auth
    status, _, _ = await post(session, compass, make_body(), hdrs)
    assert status == 401
    assert compass.events == [] and compass.invalid == []
    assert compass.requests[0].status == 401


async def test_other_paths_and_methods_are_404(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    async with session.get(compass.base_url + "/compass/v1/events", headers=headers(compass)) as resp:
        assert resp.status == 404
    async with session.post(
        compass.base_url + "/compass/v1/event", data="{}", headers=headers(compass)
    ) as resp:
        assert resp.status == 404
    assert compass.events == []


async def test_scripted_503_then_normal(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    compass.script(Fault(status=503))
    assert (await post(session, compass, make_body()))[0] == 503
    assert compass.events == []
    assert (await post(session, compass, make_body()))[0] == 202
    assert [r.status for r in compass.requests] == [503, 202]


async def test_scripted_429_with_retry_after(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    compass.script(Fault(status=429, retry_after="2"), Fault(status=429))
    status, _, hdrs = await post(session, compass, make_body())
    assert status == 429 and hdrs["Retry-After"] == "2"
    status, _, hdrs = await post(session, compass, make_body())
    assert status == 429 and "Retry-After" not in hdrs
    assert compass.events == []


async def test_scripted_404_body(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    body = {"errors": [{"type": "CREATE_EVENT_SOURCE_NOT_FOUND", "message": "event source not found"}]}
    compass.script(Fault(status=404, body=body))
    status, text, _ = await post(session, compass, make_body())
    assert status == 404 and json.loads(text) == body


async def test_scripted_delay(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    compass.script(Fault(delay=0.5))
    t0 = time.monotonic()
    status, _, _ = await post(session, compass, make_body())
    assert status == 202
    assert time.monotonic() - t0 >= 0.45
    assert len(compass.events) == 1


async def test_scripted_delay_hits_client_timeout(
    compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    compass.script(Fault(delay=2.0, status=503))
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            compass.url,
            data=json.dumps(make_body()),
            headers=headers(compass),
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as resp:
            await resp.read()
    # stopping the fake while the delayed answer is still pending must be clean (fixture teardown)


async def test_scripted_reset_is_a_connection_error(
    compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    compass.script(Fault(reset=True))
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, compass, make_body())
    assert compass.events == []
    assert compass.requests[0].status is None
    assert (await post(session, compass, make_body()))[0] == 202


async def test_ordering_is_recorded_and_stale_updates_dropped(
    compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    for usn, state in [(10, "IN_PROGRESS"), (12, "SUCCESSFUL"), (11, "IN_PROGRESS"), (12, "FAILED")]:
        assert (await post(session, compass, make_body(usn=usn, state=state)))[0] == 202
    await post(session, compass, make_body(pipeline_id="hello#1", usn=1))
    seq = compass.sequence
    assert [(s.pipeline_id, s.update_sequence_number, s.stored) for s in seq] == [
        ("team/api#7", 10, True),
        ("team/api#7", 12, True),
        ("team/api#7", 11, False),
        ("team/api#7", 12, False),
        ("hello#1", 1, True),
    ]
    assert {s.external_event_source_id for s in seq} == {"jenkins.example.com"}
    stored = compass.stored["team/api#7"]["event"]["build"]
    assert stored["buildProperties"]["state"] == "SUCCESSFUL"
    assert [d.update_sequence_number for d in compass.dropped] == [11, 12]
    builds = compass.builds()
    assert list(builds) == ["team/api#7", "hello#1"]
    assert len(builds["team/api#7"]) == 4


async def test_wait_for(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    await post(session, compass, make_body())
    events = await asyncio.to_thread(compass.wait_for, lambda ev: len(ev) == 1, 2.0)
    assert len(events) == 1
    with pytest.raises(AssertionError, match="condition not met"):
        await asyncio.to_thread(compass.wait_for, lambda ev: len(ev) == 2, 0.2)
    assert len(await compass.wait_for_async(lambda ev: len(ev) == 1)) == 1


def test_custom_credentials_and_cloud_id() -> None:
    with FakeCompass(email="a@b.c", token="t0k", cloud_id="c-9") as fake:
        body = make_body(cloud_id="c-9")

        async def go() -> int:
            async with (
                aiohttp.ClientSession() as s,
                s.post(
                    fake.url,
                    data=json.dumps(body),
                    headers={
                        "Authorization": aiohttp.encode_basic_auth("a@b.c", "t0k"),
                        "Content-Type": "application/json",
                    },
                ) as resp,
            ):
                return resp.status

        assert asyncio.run(go()) == 202
        assert fake.events == [body]
    assert copy.deepcopy(fake.events) == [body]  # still readable after stop


def test_shared_reference_schema_is_used_when_present() -> None:
    fake = FakeCompass()
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference"
    names = [name for name, _ in fake._validators["build"]]
    assert names[0] == "project schema"
    assert ("reference schema" in names) == (shared / "compass-build-event.schema.json").exists()
    names = [name for name, _ in fake._validators["deployment"]]
    assert names[0] == "project deployment schema"
    assert ("reference deployment schema" in names) == (
        shared / "compass-deployment-event.schema.json"
    ).exists()


def _deployment_body(**props: Any) -> dict[str, Any]:
    return {
        "cloudId": "cloud-123",
        "event": {
            "deployment": {
                "displayName": "deploy-shop #4 to production",
                "lastUpdated": "2026-11-20T10:00:05.000Z",
                "updateSequenceNumber": 7,
                "description": "SUCCESS in 1m 02s",
                "url": "https://jenkins.example.com/job/deploy-shop/4/",
                "externalEventSourceId": "jenkins.example.com",
                "deploymentProperties": {
                    "sequenceNumber": 4,
                    "state": "SUCCESSFUL",
                    "pipeline": {
                        "pipelineId": "deploy-shop#4",
                        "url": "https://jenkins.example.com/job/deploy-shop/",
                        "displayName": "deploy-shop",
                    },
                    "environment": {
                        "category": "PRODUCTION",
                        "displayName": "production",
                        "environmentId": "prod",
                    },
                    "startedAt": "2026-11-20T09:59:03.000Z",
                    "completedAt": "2026-11-20T10:00:05.000Z",
                    **props,
                },
            }
        },
    }


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({}, True),
        ({"state": "ROLLED_BACK"}, True),
        ({"state": "TIMED_OUT"}, False),  # a build's state, not a deployment's
        ({"environment": {"category": "PROD", "displayName": "p", "environmentId": "p"}}, False),
        ({"pipeline": {"pipelineId": "deploy-shop#4", "displayName": "deploy-shop"}}, False),  # url required
        ({"sequenceNumber": -1}, False),
    ],
)
async def test_deployment_events_are_checked_against_their_own_schema(
    compass: FakeCompass, session: aiohttp.ClientSession, change: dict[str, Any], accepted: bool
) -> None:
    body = _deployment_body(**change)
    status, _, _ = await post(session, compass, body)
    assert (status == 202) is accepted, compass.dump()
    if accepted:
        assert compass.deployments() == {"deploy-shop#4": [body]} and compass.builds() == {}


# --- tenant info, GraphQL registry and the older event-source flow ----------------------------------


def gql_headers(token: str = "test-token", beta: bool = True) -> dict[str, str]:
    hdrs = {
        "Authorization": aiohttp.encode_basic_auth("ci-bot@example.com", token),
        "Content-Type": "application/json",
    }
    if beta:
        hdrs["X-ExperimentalApi"] = "compass-beta, compass-prototype"
    return hdrs


async def gql(
    session: aiohttp.ClientSession,
    compass: FakeCompass,
    query: str | Operation,
    variables: dict[str, Any] | None = None,
    hdrs: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One GraphQL request; an ``Operation`` is one of buildtail's own (its document and variables)."""
    if isinstance(query, Operation):
        query, variables = query.document, query.variables
    async with session.post(
        compass.graphql_url,
        data=json.dumps({"query": query, "variables": variables or {}}),
        headers=hdrs or gql_headers(),
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def compass_field(answer: Any, name: str) -> Any:
    assert "errors" not in answer, answer
    return answer["data"]["compass"][name]


@pytest.fixture
def gql_compass(graphql_schema: bool) -> Iterator[FakeCompass]:
    with FakeCompass(graphql_schema=graphql_schema) as fake:
        yield fake


async def test_tenant_info_needs_no_auth(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    async with session.get(compass.site_url + "/_edge/tenant_info") as resp:
        assert resp.status == 200
        assert await resp.json() == {"cloudId": "cloud-123"}
    assert compass.requests == [] and compass.tenant_info_requests == 1


async def test_graphql_auth_and_beta_header(gql_compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    find = find_operation("cloud-123", "x", "BUILD")
    status, answer = await gql(session, gql_compass, find, hdrs=gql_headers(token="wrong"))
    assert (status, answer) == (401, {"code": 401, "message": "Unauthorized"})
    status, answer = await gql(session, gql_compass, find, hdrs=gql_headers(beta=False))
    assert status == 200 and answer["data"] is None and "compass-beta" in answer["errors"][0]["message"]
    assert gql_compass.requests == [], "GraphQL requests are not event requests"
    assert [(r.field, r.status, r.authorized) for r in gql_compass.graphql_requests] == [
        ("eventSource", 401, False),
        ("eventSource", 200, True),
    ]


async def test_graphql_create_find_attach_component(
    gql_compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    """buildtail's own documents, answered in the schema's shapes (the same in both modes)."""
    compass = gql_compass
    compass.add_component("comp-1", name="API")
    status, answer = await gql(session, compass, create_operation("cloud-123", "h.example.com"))
    payload = compass_field(answer, "createEventSource")
    assert status == 200 and payload["success"] is True and payload["errors"] is None
    source = payload["eventSource"]
    assert source["externalEventSourceId"] == "h.example.com" and source["eventType"] == "BUILD"
    assert compass.event_sources() == [source]

    _, answer = await gql(session, compass, create_operation("cloud-123", "h.example.com"))
    assert compass_field(answer, "createEventSource") == {
        "success": False,
        "eventSource": None,
        "errors": [
            {
                "message": "an event source 'h.example.com' of type BUILD already exists",
                "extensions": {"statusCode": 409, "errorType": "ALREADY_EXISTS"},  # one object
            }
        ],
    }
    _, answer = await gql(session, compass, create_operation("other", "new"))
    assert compass_field(answer, "createEventSource")["success"] is False
    assert len(compass.event_sources()) == 1

    _, answer = await gql(session, compass, find_operation("cloud-123", "h.example.com", "BUILD"))
    assert compass_field(answer, "eventSource") == {"__typename": "EventSource", **source}
    _, answer = await gql(session, compass, find_operation("cloud-123", "h.example.com", "VULNERABILITY"))
    assert compass_field(answer, "eventSource") == {
        "__typename": "QueryError",
        "message": "not found",
        "extensions": [{"statusCode": 404, "errorType": "NOT_FOUND"}],  # a list
    }

    attach = attach_operation("comp-1", source["id"])
    _, answer = await gql(session, compass, attach)
    assert compass_field(answer, "attachEventSource") == {"success": True, "errors": None}
    _, answer = await gql(session, compass, attach)
    payload = compass_field(answer, "attachEventSource")
    assert payload["success"] is False and "already attached" in payload["errors"][0]["message"]
    assert payload["errors"][0]["extensions"] == {"statusCode": 409, "errorType": "ALREADY_EXISTS"}
    _, answer = await gql(session, compass, attach_operation("nope", source["id"]))
    assert compass_field(answer, "attachEventSource")["success"] is False
    assert compass.components() == {"comp-1": [source["id"]]}

    _, answer = await gql(session, compass, component_operation("comp-1"))
    assert compass_field(answer, "component") == {
        "__typename": "CompassComponent",
        "id": "comp-1",
        "name": "API",
        "eventSources": [source],
    }
    _, answer = await gql(session, compass, component_operation("nope"))
    assert compass_field(answer, "component")["extensions"] == [{"statusCode": 404, "errorType": "NOT_FOUND"}]
    fields = [r.field for r in compass.mutations()]
    assert fields == ["createEventSource"] * 3 + ["attachEventSource"] * 3
    assert compass.graphql_requests[0].operation == "buildtailCreateEventSource"


async def test_graphql_answers_select_what_the_document_asks_for(
    compass_schema: Any, session: aiohttp.ClientSession
) -> None:
    """Executed against the schema, an answer holds the selected fields only, and refuses what the
    schema does not have, as a GraphQL server does."""
    with FakeCompass(graphql_schema=True) as compass:
        sid = compass.add_event_source("h", "CUSTOM")
        query = """query q($c: ID!, $x: ID!) { compass {
            eventSource(cloudId: $c, externalEventSourceId: $x, eventType: CUSTOM) {
              ... on EventSource { id } ... on QueryError { identifier extensions { __typename } } } } }"""
        _, answer = await gql(session, compass, query, {"c": "cloud-123", "x": "h"})
        assert answer == {"data": {"compass": {"eventSource": {"id": sid}}}}
        _, answer = await gql(session, compass, query, {"c": "cloud-123", "x": "nope"})
        assert answer == {
            "data": {
                "compass": {
                    "eventSource": {
                        "identifier": None,
                        "extensions": [{"__typename": "GenericQueryErrorExtension"}],
                    }
                }
            }
        }
        for broken in (
            query.replace("externalEventSourceId:", "externalId:"),  # no such argument
            query.replace("{ id }", "{ id name }"),  # no such field on EventSource
            query.replace("eventType: CUSTOM", "eventType: GREY"),  # not a CompassEventType
            query.replace("... on EventSource { id }", "id"),  # a union has no fields of its own
        ):
            status, answer = await gql(session, compass, broken, {"c": "cloud-123", "x": "h"})
            assert status == 200 and "data" not in answer and answer["errors"], broken
        _, answer = await gql(session, compass, find_operation("cloud-123", "h", "GREY"))
        assert answer["data"] is None and "GREY" in answer["errors"][0]["message"]
        _, answer = await gql(session, compass, create_operation("cloud-123", "h").document, {"input": {}})
        assert answer["data"] is None and "cloudId" in answer["errors"][0]["message"]
        assert compass.event_sources() == [{"id": sid, "externalEventSourceId": "h", "eventType": "CUSTOM"}]


async def test_fail_graphql_answers_null_beside_a_top_level_error(
    gql_compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    gql_compass.add_event_source("h", "BUILD")
    gql_compass.fail_graphql("eventSource", "the API token lacks the scope read:event:compass")
    _, answer = await gql(session, gql_compass, find_operation("cloud-123", "h", "BUILD"))
    assert answer == {
        "data": {"compass": {"eventSource": None}},
        "errors": [
            {
                "message": "the API token lacks the scope read:event:compass",
                "locations": [{"line": 3, "column": 5}],
                "path": ["compass", "eventSource"],
                "extensions": {"statusCode": 403, "errorType": "FORBIDDEN"},
            }
        ],
    }
    _, answer = await gql(session, gql_compass, create_operation("cloud-123", "new"))
    assert compass_field(answer, "createEventSource")["success"] is True, "only eventSource fails"
    with pytest.raises(ValueError, match="unknown field"):
        gql_compass.fail_graphql("eventSources", "typo")


async def test_graphql_metric_sources_one_per_definition(
    gql_compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    """createMetricSource and a component's metricSources in the schema's shapes (both modes); a
    second metric source for the same component and definition is refused."""
    compass = gql_compass
    compass.add_component("comp-1")
    rate, build_time = DERIVED_METRICS[0], DERIVED_METRICS[1]
    _, answer = await gql(session, compass, create_metric_source_operation("comp-1", rate))
    payload = compass_field(answer, "createMetricSource")
    assert payload["success"] is True and payload["errors"] is None
    created = payload["createdMetricSource"]
    assert created == {
        "id": created["id"],
        "externalMetricSourceId": "buildtail:build-success-rate:comp-1",
        "metricDefinition": {"id": rate.id, "name": "Build success rate"},
    }
    assert compass.metric_sources("comp-1") == [
        {
            "id": created["id"],
            "componentId": "comp-1",
            "metricDefinitionId": rate.id,
            "externalMetricSourceId": "buildtail:build-success-rate:comp-1",
            "derived": True,
        }
    ]

    _, answer = await gql(session, compass, create_metric_source_operation("comp-1", rate))
    assert compass_field(answer, "createMetricSource") == {
        "success": False,
        "createdMetricSource": None,
        "errors": [
            {
                "message": f"component 'comp-1' already has a metric source for {rate.id!r}",
                "extensions": {"statusCode": 409, "errorType": "ALREADY_EXISTS"},
            }
        ],
    }
    _, answer = await gql(session, compass, create_metric_source_operation("nope", rate))
    errors = compass_field(answer, "createMetricSource")["errors"]
    assert errors[0]["extensions"] == {"statusCode": 404, "errorType": "NOT_FOUND"}
    custom = create_metric_source_operation("comp-1", build_time)
    custom.variables["input"]["metricDefinitionId"] = "ari:cloud:compass:cloud-123:metric-definition/custom/1"
    _, answer = await gql(session, compass, custom)
    errors = compass_field(answer, "createMetricSource")["errors"]
    assert "cannot be derived" in errors[0]["message"] and errors[0]["extensions"]["statusCode"] == 400
    assert len(compass.metric_sources("comp-1")) == 1

    _, answer = await gql(session, compass, metric_sources_operation("comp-1"))
    assert compass_field(answer, "component") == {
        "__typename": "CompassComponent",
        "id": "comp-1",
        "metricSources": {
            "__typename": "CompassComponentMetricSourcesConnection",
            "nodes": [created],
            "pageInfo": {"hasNextPage": False, "endCursor": "cursor:0"},
        },
    }


async def test_graphql_metric_sources_pages(gql_compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    compass = gql_compass
    compass.add_component("comp-1")
    for n in range(12):
        compass.add_metric_source("comp-1", f"custom-{n}", f"ext-{n}", derived=False)
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        _, answer = await gql(session, compass, metric_sources_operation("comp-1", after))
        connection = compass_field(answer, "component")["metricSources"]
        pages.append([n["metricDefinition"]["id"] for n in connection["nodes"]])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == [[f"custom-{n}" for n in range(10)], ["custom-10", "custom-11"]]
    _, answer = await gql(session, compass, metric_sources_operation("comp-1", "junk"))
    refused = compass_field(answer, "component")["metricSources"]
    assert refused["__typename"] == "QueryError"
    assert refused["extensions"] == [{"statusCode": 400, "errorType": "BAD_REQUEST"}]
    _, answer = await gql(session, compass, metric_sources_operation("comp-2"))
    assert compass_field(answer, "component")["__typename"] == "QueryError"


async def test_fail_graphql_metric_sources_answers_null_beside_an_error(
    gql_compass: FakeCompass, session: aiohttp.ClientSession
) -> None:
    """A nested field fails as Compass fails it: null in place, the component still there."""
    gql_compass.add_component("comp-1")
    gql_compass.fail_graphql("metricSources", "the API token lacks the scope read:metric:compass")
    _, answer = await gql(session, gql_compass, metric_sources_operation("comp-1"))
    assert answer["data"] == {
        "compass": {"component": {"__typename": "CompassComponent", "id": "comp-1", "metricSources": None}}
    }
    [error] = answer["errors"]
    assert error["message"] == "the API token lacks the scope read:metric:compass"
    assert error["path"] == ["compass", "component", "metricSources"]
    assert error["extensions"] == {"statusCode": 403, "errorType": "FORBIDDEN"}


def test_graphql_modes(compass_schema: Any) -> None:
    assert FakeCompass().graphql_schema is True, "the schema is used when it is there"
    assert FakeCompass(graphql_schema=False).graphql_schema is False


def test_registry_helpers() -> None:
    fake = FakeCompass()  # the registry works without a running server
    sid = fake.add_event_source("h", "CUSTOM")
    fake.add_component("c")
    fake.attach("c", sid)
    with pytest.raises(ValueError, match="already attached"):
        fake.attach("c", sid)
    with pytest.raises(ValueError, match="not found"):
        fake.attach("unknown", sid)
    with pytest.raises(ValueError, match="already exists"):
        fake.add_event_source("h", "CUSTOM")
    assert fake.find_event_source("h") is None
    assert fake.find_event_source("h", "CUSTOM") == {
        "id": sid,
        "externalEventSourceId": "h",
        "eventType": "CUSTOM",
    }
    assert fake.components() == {"c": [sid]}
    mid = fake.add_metric_source("c", DERIVED_METRICS[0].id)
    with pytest.raises(ValueError, match="already has a metric source"):
        fake.add_metric_source("c", DERIVED_METRICS[0].id, "another")
    with pytest.raises(ValueError, match="not found"):
        fake.add_metric_source("unknown", DERIVED_METRICS[0].id)
    assert [m["id"] for m in fake.metric_sources("c")] == [mid] and fake.metric_sources("x") == []


async def test_faults_do_not_touch_graphql(compass: FakeCompass, session: aiohttp.ClientSession) -> None:
    compass.script(Fault(status=503))
    assert (await gql(session, compass, find_operation("cloud-123", "x", "BUILD")))[0] == 200
    async with session.get(compass.site_url + "/_edge/tenant_info") as resp:
        assert resp.status == 200
    assert (await post(session, compass, make_body()))[0] == 503, "the fault waited for the events endpoint"


async def test_require_event_source_404_until_a_build_source_exists(session: aiohttp.ClientSession) -> None:
    with FakeCompass(require_event_source=True) as compass:
        compass.add_event_source("jenkins.example.com", "CUSTOM")  # the grey-icon case does not count
        status, text, _ = await post(session, compass, make_body())
        assert status == 404
        assert json.loads(text)["errors"][0]["type"] == "CREATE_EVENT_SOURCE_NOT_FOUND"
        assert compass.events == [] and compass.invalid == []
        with_component = make_body(usn=2)
        with_component["componentId"] = "comp-1"
        assert (await post(session, compass, with_component))[0] == 202, "componentId routes it"
        compass.add_event_source("jenkins.example.com", "BUILD")
        assert (await post(session, compass, make_body(usn=3)))[0] == 202
        assert [r.status for r in compass.requests] == [404, 202, 202]
        assert len(compass.events) == 2
