"""The resolvers of the Compass GraphQL fields the fake knows, shared by both ways of answering.

With Atlassian's schema the document is executed over these resolvers; without it the hand-made
projection calls the very same ones, so the two answers cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import graphql

from tools.fake_compass._registry import DERIVED_DEFINITIONS, _mutation_error, _Registry

GRAPHQL_FIELDS = ("eventSource", "component", "createEventSource", "attachEventSource", "createMetricSource")
NESTED_FIELDS = ("metricSources",)  # fields of a component that ``fail_graphql`` can fail too
METRIC_PAGE = 10  # metricSources' default page size


def _query_error(message: str, status: int, kind: str) -> dict[str, Any]:
    """A ``QueryError`` in place of the object asked for: its ``extensions`` is a list."""
    return {
        "__typename": "QueryError",
        "message": message,
        "extensions": [{"statusCode": status, "errorType": kind}],
    }


def _metric_node(source: dict[str, Any]) -> dict[str, Any]:
    """A ``CompassMetricSource`` as the schema has it (the registry keeps the definition's id)."""
    definition = source["metricDefinitionId"]
    name = DERIVED_DEFINITIONS.get(definition, (None, None))[0]
    return {
        "id": source["id"],
        "externalMetricSourceId": source["externalMetricSourceId"],
        "metricDefinition": {"id": definition, "name": name},
        "title": name,
        "url": None,
    }


class _CompassApi:
    """Resolvers of the Compass fields the fake knows, over its registry (called with the lock held).

    The same methods serve execution against the real schema and the hand-made answers, so the two
    cannot drift apart. Each returns the fields buildtail's documents select, ``__typename`` naming
    the member of a union; a failure scripted with ``fail_graphql`` is raised as a field error."""

    def __init__(self, fake: _Registry) -> None:
        self._fake = fake

    def _scripted_failure(self, field_name: str) -> None:
        failure = self._fake._state.graphql_failures.get(field_name)
        if failure is not None:
            raise graphql.GraphQLError(failure["message"], extensions=failure["extensions"])

    def eventSource(
        self,
        _info: Any,
        cloudId: str,
        eventType: str,
        externalEventSourceId: str,
    ) -> dict[str, Any]:
        self._scripted_failure("eventSource")
        found = None
        if cloudId == self._fake.cloud_id:
            found = self._fake._lookup_source(str(externalEventSourceId), str(eventType))
        if found is None:
            return _query_error("not found", 404, "NOT_FOUND")
        return {"__typename": "EventSource", **found}

    def component(self, _info: Any, id: str) -> dict[str, Any]:
        self._scripted_failure("component")
        component = self._fake._state.components.get(str(id))
        if component is None:
            return _query_error("not found", 404, "NOT_FOUND")
        return {
            "__typename": "CompassComponent",
            "id": id,
            "name": component["name"],
            "eventSources": [dict(self._fake._state.sources[s]) for s in component["sources"]],
            "metricSources": lambda info, query=None: self.metricSources(info, str(id), query),
        }

    def metricSources(self, _info: Any, component_id: str, query: Any = None) -> dict[str, Any]:
        """A component's ``metricSources(query: {first, after})``: one page of the connection."""
        self._scripted_failure("metricSources")
        query = query if isinstance(query, dict) else {}
        first = METRIC_PAGE if query.get("first") is None else query["first"]
        after = query.get("after")
        found = [m for m in self._fake._state.metric_sources.values() if m["componentId"] == component_id]
        start = 0
        if after is not None:
            if not (isinstance(after, str) and after.startswith("cursor:") and after[7:].isdigit()):
                return _query_error(f"invalid cursor {after!r}", 400, "BAD_REQUEST")
            start = int(after[7:]) + 1
        if not isinstance(first, int) or first < 0:
            return _query_error(f"first must be a positive number, not {first!r}", 400, "BAD_REQUEST")
        page = list(enumerate(found))[start : start + first]
        cursors = [f"cursor:{i}" for i, _ in page]
        return {
            "__typename": "CompassComponentMetricSourcesConnection",
            "nodes": [_metric_node(m) for _, m in page],
            "edges": [
                {"cursor": c, "node": _metric_node(m)} for c, (_, m) in zip(cursors, page, strict=True)
            ],
            "pageInfo": {
                "hasNextPage": start + len(page) < len(found),
                "hasPreviousPage": start > 0,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            },
        }

    def createMetricSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("createMetricSource")
        input = input if isinstance(input, dict) else {}
        source, error = self._fake._create_metric_source(
            str(input.get("componentId")),
            str(input.get("metricDefinitionId")),
            input.get("externalMetricSourceId"),
            derived=input.get("derived") is True,
        )
        if source is None:
            return {"success": False, "createdMetricSource": None, "errors": [error]}
        return {"success": True, "createdMetricSource": _metric_node(source), "errors": None}

    def createEventSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("createEventSource")
        input = input if isinstance(input, dict) else {}  # by hand, nothing has checked it
        if input.get("cloudId") != self._fake.cloud_id:
            error = _mutation_error(f"cloudId {input.get('cloudId')!r} is not this site", 403, "FORBIDDEN")
            return {"success": False, "eventSource": None, "errors": [error]}
        source, error = self._fake._create_source(
            input.get("externalEventSourceId", ""), input.get("eventType", "")
        )
        if source is None:
            return {"success": False, "eventSource": None, "errors": [error]}
        return {"success": True, "eventSource": dict(source), "errors": None}

    def attachEventSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("attachEventSource")
        input = input if isinstance(input, dict) else {}
        error = self._fake._attach_source(str(input.get("componentId")), str(input.get("eventSourceId")))
        if error is not None:
            return {"success": False, "errors": [error]}
        return {"success": True, "errors": None}
