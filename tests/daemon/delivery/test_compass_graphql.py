"""buildtail's GraphQL requests against Atlassian's published Compass schema, and how it reads answers.

The requests come from the code that sends them (``daemon.sinks.compass.graphql`` and
``daemon.sinks.compass.metrics``), never from copies here.
To add a document: declare it with ``graphql_document()`` beside the code, build its request in a
function (as ``find_operation`` does), and add one call of that function to ``REQUESTS`` below;
``test_every_declared_document_has_a_request`` fails until it is there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLEnumType, GraphQLSchema

from daemon.config import Settings
from daemon.sinks.compass.admin import doctor, setup, targets
from daemon.sinks.compass.graphql import (
    EVENT_TYPES,
    CompassGraphQL,
    EventSource,
    GraphQLError,
    Operation,
    attach_operation,
    component_operation,
    create_operation,
    documents,
    find_operation,
    read_attach,
    read_component,
    read_create,
    read_find,
)
from daemon.sinks.compass.metrics import (
    DERIVED_METRICS,
    PAGE_SIZE,
    MetricSource,
    create_metric_source_operation,
    metric_sources_operation,
    read_create_metric_source,
    read_metric_sources,
)
from tools import fake_compass
from tools.fake_compass import FakeCompass, compass_graphql
from tools.fake_compass.compass_graphql import allowed_answer, problems

CLOUD = "a436116f-02ce-4520-8fbb-7301462a1674"
HOST = "build01.example.com"
COMPONENT = f"ari:cloud:compass:{CLOUD}:component/6a1b/9f2e"
SOURCE = f"ari:cloud:compass:{CLOUD}:event-source/0c77/41d2"

# Every request buildtail can send, each built by the code that sends it.
REQUESTS: list[tuple[str, Operation]] = [
    *[(f"eventSource-{t}", find_operation(CLOUD, HOST, t)) for t in EVENT_TYPES],
    ("eventSource-per-job", find_operation(CLOUD, f"{HOST}/team/api", "BUILD")),
    ("component", component_operation(COMPONENT)),
    ("createEventSource", create_operation(CLOUD, HOST)),
    ("attachEventSource", attach_operation(COMPONENT, SOURCE)),
    *[(f"createEventSource-{t}", create_operation(CLOUD, HOST, t)) for t in ("DEPLOYMENT",)],
    ("metricSources-first-page", metric_sources_operation(COMPONENT)),
    ("metricSources-next-page", metric_sources_operation(COMPONENT, "b2Zmc2V0OjEw")),
    *[
        (f"createMetricSource-{d.short}", create_metric_source_operation(COMPONENT, d))
        for d in DERIVED_METRICS
    ],
]


def test_every_declared_document_has_a_request() -> None:
    assert len(documents()) == len(set(documents())) == 6
    assert {op.document for _, op in REQUESTS} == set(documents())


@pytest.mark.parametrize(("name", "operation"), REQUESTS, ids=[name for name, _ in REQUESTS])
def test_request_is_valid_against_the_schema(
    compass_schema: GraphQLSchema, name: str, operation: Operation
) -> None:
    assert problems(compass_schema, operation.document, operation.variables) == []


def test_event_types_are_the_schemas(compass_schema: GraphQLSchema) -> None:
    enum = compass_schema.type_map["CompassEventType"]
    assert isinstance(enum, GraphQLEnumType)
    assert set(EVENT_TYPES) == set(enum.values) == set(fake_compass.EVENT_TYPES)
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) and EVENT_TYPES[0] == "BUILD"


def test_derived_metrics_are_the_builtin_definitions() -> None:
    """The definitions connected are the built-in ones the reference names, one per (kind, metric)."""
    readme = compass_graphql.SDL_PATH.parent / "README.md"
    if not readme.exists():
        pytest.skip(f"the reference is not there ({readme})")
    text = readme.read_text(encoding="utf-8")
    for definition in DERIVED_METRICS:
        assert definition.id.startswith("ari:cloud:compass::metric-definition/builtin/")
        assert f"builtin/{definition.short}" in text, definition
    assert [(d.event_type, d.name) for d in DERIVED_METRICS] == [
        ("BUILD", "Build Success Rate"),
        ("BUILD", "Build Time"),
        ("DEPLOYMENT", "Deployment Frequency"),
        ("DEPLOYMENT", "Deployment Time"),
    ]
    assert {d.id for d in DERIVED_METRICS} == set(fake_compass.DERIVED_DEFINITIONS)


def test_create_metric_source_input() -> None:
    [rate] = [d for d in DERIVED_METRICS if d.short == "build-success-rate"]
    assert create_metric_source_operation(COMPONENT, rate).variables == {
        "input": {
            "componentId": COMPONENT,
            "metricDefinitionId": "ari:cloud:compass::metric-definition/builtin/build-success-rate",
            "externalMetricSourceId": f"buildtail:build-success-rate:{COMPONENT}",
            "derived": True,
        }
    }
    assert metric_sources_operation(COMPONENT).variables == {
        "id": COMPONENT,
        "first": PAGE_SIZE,
        "after": None,
    }


def _broken() -> list[tuple[str, str, dict[str, Any], str]]:
    find = find_operation(CLOUD, HOST, "BUILD")
    create = create_operation(CLOUD, HOST)
    attach = attach_operation(COMPONENT, SOURCE)
    component = component_operation(COMPONENT)
    metrics = metric_sources_operation(COMPONENT)
    metric = create_metric_source_operation(COMPONENT, DERIVED_METRICS[0])
    return [
        ("unknown argument", find.document.replace("externalEventSourceId:", "externalId:"), find.variables,
         "Unknown argument 'externalId'"),
        ("wrong input type", create.document.replace("CreateEventSourceInput", "AttachEventSourceInput"),
         create.variables, "AttachEventSourceInput"),
        ("unknown field", component.document.replace("eventSources {", "eventSourceList {"),
         component.variables, "Cannot query field 'eventSourceList'"),
        ("extensions as a leaf", find.document.replace("extensions { statusCode errorType }", "extensions"),
         find.variables, "must have a selection of subfields"),
        ("syntax", find.document[:-1], find.variables, "Syntax Error"),
        ("enum value", find.document, {**find.variables, "eventType": "GREY"}, "'GREY' does not exist"),
        ("missing variable", find.document, {"cloudId": CLOUD, "eventType": "BUILD"}, "'$external'"),
        ("missing input field", create.document,
         {"input": {k: v for k, v in create.variables["input"].items() if k != "cloudId"}},
         "to include required field 'cloudId'"),
        ("extra input field", attach.document, {"input": {**attach.variables["input"], "eventType": "BUILD"}},
         "not to include unknown field 'eventType'"),
        ("page arguments on the field", metrics.document.replace("metricSources(query: {", "metricSources({"),
         metrics.variables, "Syntax Error"),
        ("first outside query", metrics.document.replace("(query: {first: $first, after: $after})",
         "(first: $first)"), metrics.variables, "Unknown argument 'first'"),
        ("edges without node", metrics.document.replace("nodes {", "edges {"), metrics.variables,
         "Cannot query field 'id' on type 'CompassMetricSourceEdge'"),
        ("derived as text", metric.document, {"input": {**metric.variables["input"], "derived": "true"}},
         "Boolean cannot represent"),
        ("missing metric definition", metric.document,
         {"input": {k: v for k, v in metric.variables["input"].items() if k != "metricDefinitionId"}},
         "to include required field 'metricDefinitionId'"),
        ("payload field of another mutation", metric.document.replace("createdMetricSource", "metricSource"),
         metric.variables, "Cannot query field 'metricSource'"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "document", "variables", "expected"), _broken(), ids=[b[0] for b in _broken()]
)
def test_the_schema_check_rejects_broken_requests(
    compass_schema: GraphQLSchema, name: str, document: str, variables: dict[str, Any], expected: str
) -> None:
    found = problems(compass_schema, document, variables)
    assert any(expected in p for p in found), found


# --- what buildtail sends in practice -------------------------------------------------------------


@pytest.fixture
def compass_options(graphql_schema: bool) -> dict[str, Any]:
    return {"cloud_id": CLOUD, "graphql_schema": graphql_schema}


def _settings(tmp_path: Path, compass: FakeCompass) -> Settings:
    (tmp_path / "jenkins").mkdir()
    return Settings.model_validate(
        {
            "host": HOST,
            "state_dir": str(tmp_path / "state"),
            "sources": [{"type": "jenkins", "home": str(tmp_path / "jenkins")}],
            "compass": {
                "base_url": compass.base_url,
                "cloud_id": compass.cloud_id,
                "email": compass.email,
                "api_token": compass.token,
                "components": [{"match": "**", "component_id": COMPONENT}],
                "deployments": [
                    {"match": "deploy-*", "environment": {"category": "PRODUCTION", "name": "prod"}}
                ],
                "timeout": "10s",
            },
        }
    )


async def test_every_request_sent_is_declared_and_valid(
    tmp_path: Path, compass: FakeCompass, compass_schema: GraphQLSchema
) -> None:
    """doctor, setup and doctor again on the grey-icon case with deployments configured: every
    request that reached Compass (both event types, attachments, metric sources)."""
    compass.attach(compass.add_component(COMPONENT), compass.add_event_source(HOST, "CUSTOM"))
    settings = _settings(tmp_path, compass)
    assert settings.compass is not None
    client = CompassGraphQL(settings.compass)
    try:
        wanted = targets(settings, [])
        # BUILD and DEPLOYMENT exist only as CUSTOM; neither kind's metrics are connected
        assert (await doctor(client, settings.compass, wanted))[1] == 4
        await setup(client, compass.cloud_id, wanted)
        assert (await doctor(client, settings.compass, wanted))[1] == 0
    finally:
        await client.close()
    sent = compass.graphql_requests
    assert {r.field for r in sent} == {
        "eventSource",
        "component",
        "createEventSource",
        "attachEventSource",
        "createMetricSource",
    }
    assert "buildtailMetricSources" in {r.operation for r in sent}
    created = [r.variables["input"].get("eventType") for r in sent if r.field == "createEventSource"]
    assert created == ["BUILD", "DEPLOYMENT"]
    assert sum(r.field == "createMetricSource" for r in sent) == 4
    for request in sent:
        assert request.query in documents(), request.query
        assert request.query is not None
        assert problems(compass_schema, request.query, request.variables) == []
        assert request.answer is not None and "errors" not in request.answer, request.answer


# --- reading answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fails:
    pattern: str
    status: int | None = None


_READERS: dict[str, tuple[Operation, Callable[[object], object]]] = {
    "find": (find_operation(CLOUD, HOST, "BUILD"), lambda a: read_find(a, HOST, "BUILD")),
    "component": (component_operation(COMPONENT), lambda a: read_component(a, COMPONENT)),
    "create": (create_operation(CLOUD, HOST), lambda a: read_create(a, HOST)),
    "attach": (attach_operation(COMPONENT, SOURCE), lambda a: read_attach(a, "attaching")),
    "metrics": (metric_sources_operation(COMPONENT), lambda a: read_metric_sources(a, COMPONENT)),
    "create-metric": (
        create_metric_source_operation(COMPONENT, DERIVED_METRICS[0]),
        lambda a: read_create_metric_source(a, "connecting"),
    ),
}
_SOURCE = {"id": SOURCE, "eventType": "BUILD", "externalEventSourceId": HOST}
_FOUND = EventSource(SOURCE, "BUILD", HOST)
_DENIED = [
    {
        "message": "the API token lacks the scope read:event:compass",
        "path": ["compass", "eventSource"],
        "extensions": {"statusCode": 403, "errorType": "FORBIDDEN", "classification": "Forbidden"},
    }
]


def _on(field: str, value: Any, **top: Any) -> dict[str, Any]:
    return {"data": {"compass": {field: value}}, **top}


def _query_error(message: Any, extensions: Any) -> dict[str, Any]:
    return {"__typename": "QueryError", "message": message, "extensions": extensions}


def _mutation(success: bool, errors: Any, **more: Any) -> dict[str, Any]:
    return {"success": success, **more, "errors": errors}


def _not_found(status: int = 404) -> list[dict[str, Any]]:
    return [{"statusCode": status, "errorType": "NOT_FOUND" if status == 404 else "FORBIDDEN"}]


def _component(sources: Any) -> dict[str, Any]:
    return _on(
        "component",
        {"__typename": "CompassComponent", "id": COMPONENT, "name": "api", "eventSources": sources},
    )


def _failed(field: str, message: Any, extensions: Any, **more: Any) -> dict[str, Any]:
    return _on(field, _mutation(False, [{"message": message, "extensions": extensions}], **more))


RATE = DERIVED_METRICS[0].id
METRIC = f"ari:cloud:compass:{CLOUD}:metric-source/77aa"
_METRIC = {"id": METRIC, "externalMetricSourceId": "ext", "metricDefinition": {"id": RATE, "name": "Build"}}
_LAST = {"hasNextPage": False, "endCursor": "b2Zmc2V0OjA="}


def _metrics(value: Any, **top: Any) -> dict[str, Any]:
    return _on(
        "component", {"__typename": "CompassComponent", "id": COMPONENT, "metricSources": value}, **top
    )


def _page(nodes: Any, page: Any = _LAST) -> dict[str, Any]:
    return _metrics(
        {"__typename": "CompassComponentMetricSourcesConnection", "nodes": nodes, "pageInfo": page}
    )


# (id, reader, answer, what reading it gives, whether the schema allows the answer's data)
ANSWERS: list[tuple[str, str, object, object, bool]] = [
    ("find-found", "find", _on("eventSource", {"__typename": "EventSource", **_SOURCE}), _FOUND, True),
    ("find-404", "find", _on("eventSource", _query_error("not found", _not_found())), None, True),
    ("find-403", "find", _on("eventSource", _query_error("no access", _not_found(403))),
     Fails("no access", 403), True),
    ("find-extensions-null", "find", _on("eventSource", _query_error("boom", None)), Fails("boom"), True),
    ("find-extensions-empty", "find", _on("eventSource", _query_error(None, [])), Fails("no message"), True),
    ("find-status-in-second-extension", "find",
     _on("eventSource", _query_error("nf", [{"statusCode": None, "errorType": "X"}, *_not_found()])),
     None, True),
    ("find-extensions-as-one-object", "find",
     _on("eventSource", _query_error("nf", {"statusCode": 404, "errorType": "NOT_FOUND"})), None, False),
    ("find-null-without-error", "find", _on("eventSource", None), Fails("answered null"), True),
    ("find-null-beside-permission-error", "find", _on("eventSource", None, errors=_DENIED),
     Fails("lacks the scope read:event:compass", 403), True),
    ("find-found-beside-an-error", "find",
     _on("eventSource", {"__typename": "EventSource", **_SOURCE}, errors=[{"message": "partial"}]),
     Fails("partial"), True),
    ("find-no-typename", "find", _on("eventSource", _SOURCE), Fails("Compass answered"), False),
    ("find-id-null", "find", _on("eventSource", {"__typename": "EventSource", **_SOURCE, "id": None}),
     Fails("not an event source"), False),
    ("data-null-with-errors", "find", {"data": None, "errors": [{"message": "Syntax Error"}]},
     Fails("Syntax Error"), True),
    ("errors-not-a-list", "find", {"errors": "rate limited"}, Fails("rate limited"), True),
    ("errors-without-messages", "find", {"errors": [{"extensions": {"statusCode": 500}}, 7]},
     Fails("statusCode", 500), True),
    ("no-compass", "find", {"data": {}}, Fails("no data.compass"), False),
    ("compass-null", "find", {"data": {"compass": None}}, Fails("no data.compass"), True),
    ("not-an-object", "find", ["eventSource"], Fails("not an object"), False),
    ("component", "component", _component([_SOURCE]), [_FOUND], True),
    ("component-sources-null", "component", _component(None), [], True),
    ("component-404", "component", _on("component", _query_error("gone", _not_found())),
     Fails("not found \\(gone\\)", 404), True),
    ("component-null-beside-error", "component", _on("component", None, errors=_DENIED),
     Fails("lacks", 403), True),
    ("component-junk-source", "component", _component([1]), Fails("not an event source"), False),
    ("create", "create", _on("createEventSource", _mutation(True, None, eventSource=_SOURCE)), _FOUND, True),
    ("create-no-source", "create", _on("createEventSource", _mutation(True, None, eventSource=None)),
     Fails("returned no event source"), True),
    ("create-409", "create",
     _failed("createEventSource", "exists", {"statusCode": 409, "errorType": "ALREADY_EXISTS"},
             eventSource=None), Fails("exists", 409), True),
    ("create-failed-without-errors", "create",
     _on("createEventSource", _mutation(False, None, eventSource=None)),
     Fails("did not report success"), True),
    ("create-error-without-message", "create", _failed("createEventSource", None, None, eventSource=None),
     Fails("creating event source"), True),
    ("create-extensions-as-a-list", "create",
     _failed("createEventSource", "no", [{"statusCode": 400}], eventSource=None), Fails("no", 400), False),
    ("create-null-beside-error", "create", _on("createEventSource", None, errors=[{"message": "denied"}]),
     Fails("denied"), True),
    ("create-null", "create", _on("createEventSource", None), Fails("createEventSource"), True),
    ("attach", "attach", _on("attachEventSource", _mutation(True, None)), None, True),
    ("attach-failed", "attach", _failed("attachEventSource", "nope", None), Fails("nope"), True),
    ("attach-null", "attach", _on("attachEventSource", None), Fails("attachEventSource"), True),
    ("metrics", "metrics", _page([_METRIC]), ([MetricSource(METRIC, RATE, "ext")], None), True),
    ("metrics-next-page", "metrics", _page([_METRIC], {"hasNextPage": True, "endCursor": "c1"}),
     ([MetricSource(METRIC, RATE, "ext")], "c1"), True),
    ("metrics-next-page-without-cursor", "metrics", _page([], {"hasNextPage": True, "endCursor": None}),
     Fails("gives no endCursor"), True),
    ("metrics-empty", "metrics", _page([]), ([], None), True),
    ("metrics-nodes-null", "metrics", _page(None), ([], None), True),
    ("metrics-null", "metrics", _metrics(None), ([], None), True),
    ("metrics-definition-null", "metrics", _page([{**_METRIC, "metricDefinition": None}]),
     ([MetricSource(METRIC, None, "ext")], None), True),
    ("metrics-external-id-null", "metrics", _page([{**_METRIC, "externalMetricSourceId": None}]),
     ([MetricSource(METRIC, RATE, None)], None), True),
    ("metrics-query-error", "metrics", _metrics(_query_error("needs read:metric:compass", _not_found(403))),
     Fails("metricSources: needs read:metric:compass", 403), True),
    ("metrics-null-beside-error", "metrics", _metrics(None, errors=[{**_DENIED[0], "message": "no metrics"}]),
     Fails("no metrics", 403), True),
    ("metrics-component-404", "metrics", _on("component", _query_error("gone", _not_found())),
     Fails("not found \\(gone\\)", 404), True),
    ("metrics-no-page-info", "metrics", _metrics({"__typename": "CompassComponentMetricSourcesConnection",
     "nodes": []}), Fails("no pageInfo.hasNextPage"), False),
    ("metrics-junk-node", "metrics", _page([1]), Fails("not a metric source"), False),
    ("metrics-id-null", "metrics", _page([{**_METRIC, "id": None}]), Fails("not a metric source"), False),
    ("metrics-not-a-connection", "metrics", _metrics({"__typename": "CompassComponent"}),
     Fails("Compass answered"), False),
    ("create-metric", "create-metric",
     _on("createMetricSource", _mutation(True, None, createdMetricSource=_METRIC)),
     MetricSource(METRIC, RATE, "ext"), True),
    ("create-metric-success-without-source", "create-metric",
     _on("createMetricSource", _mutation(True, None, createdMetricSource=None)), None, True),
    ("create-metric-409", "create-metric",
     _failed("createMetricSource", "already has a metric source",
             {"statusCode": 409, "errorType": "ALREADY_EXISTS"}, createdMetricSource=None),
     Fails("connecting: already has a metric source", 409), True),
    ("create-metric-failed-without-errors", "create-metric",
     _on("createMetricSource", _mutation(False, [], createdMetricSource=None)),
     Fails("did not report success"), True),
    ("create-metric-null", "create-metric", _on("createMetricSource", None),
     Fails("createMetricSource"), True),
    ("create-metric-null-beside-error", "create-metric",
     _on("createMetricSource", None, errors=[{"message": "needs write:metric:compass"}]),
     Fails("needs write:metric:compass"), True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "reader", "answer", "expected", "allowed"), ANSWERS, ids=[a[0] for a in ANSWERS]
)
def test_reading_an_answer(name: str, reader: str, answer: object, expected: object, allowed: bool) -> None:
    """Every answer gives a value or a GraphQLError that says why; nothing else escapes."""
    read = _READERS[reader][1]
    if isinstance(expected, Fails):
        with pytest.raises(GraphQLError) as caught:
            read(answer)
        assert re.search(expected.pattern, str(caught.value)), str(caught.value)
        assert caught.value.status == expected.status
    else:
        assert read(answer) == expected


_WITH_DATA = [a for a in ANSWERS if isinstance(a[2], dict) and isinstance(a[2].get("data"), dict)]


@pytest.mark.parametrize(
    ("name", "reader", "answer", "allowed"),
    [(a[0], a[1], a[2], a[4]) for a in _WITH_DATA],
    ids=[a[0] for a in _WITH_DATA],
)
def test_answer_samples_are_shapes_the_schema_allows(
    compass_schema: GraphQLSchema, name: str, reader: str, answer: dict[str, Any], allowed: bool
) -> None:
    """The samples above are real shapes (and the ones marked otherwise, such as extensions as one
    object on a QueryError, are not), so the reading is tested against what Compass can say."""
    operation = _READERS[reader][0]
    found = allowed_answer(compass_schema, operation.document, operation.variables, answer["data"])
    assert (found == []) == allowed, found
