"""The GraphQL endpoint that ``buildtail compass setup`` and ``doctor`` talk to.

Setup and doctor are only tested honestly against an endpoint that refuses what the gateway refuses
before any resolver runs (method, auth, the beta opt-in header) and answers in the schema's shapes.
Its requests are recorded apart from the events endpoint's, and scripted faults never touch them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import graphql
from aiohttp import web
from graphql.language import FieldNode, OperationDefinitionNode

from tools.fake_compass import compass_graphql
from tools.fake_compass._by_hand import _answer_by_hand
from tools.fake_compass._registry import _Registry
from tools.fake_compass._resolvers import GRAPHQL_FIELDS, NESTED_FIELDS, _CompassApi
from tools.fake_compass._state import GraphQLRequest

GRAPHQL_PATH = "/gateway/api/graphql"


def _read_operation(query: object) -> tuple[OperationDefinitionNode | None, list[FieldNode]]:
    """The request's operation and the fields it selects under ``compass`` (None, [] if it does not parse)."""
    if not isinstance(query, str):
        return None, []
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return None, []
    operation = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
    if operation is None:
        return None, []
    fields = [
        inner
        for outer in operation.selection_set.selections
        if isinstance(outer, FieldNode) and outer.name.value == "compass" and outer.selection_set
        for inner in outer.selection_set.selections
        if isinstance(inner, FieldNode)
    ]
    return operation, fields


class _GraphQLEndpoint(_Registry):
    """The GraphQL part of ``FakeCompass``: scripted field failures, request handling and recording."""

    expected_authorization: str
    graphql_schema: bool

    def fail_graphql(
        self, field_name: str, message: str, *, status: int = 403, error_type: str = "FORBIDDEN"
    ) -> None:
        """From now on ``field_name`` (one of ``GRAPHQL_FIELDS`` or ``NESTED_FIELDS``) answers null with
        a top-level error beside the rest of the data, as Compass answers a token that lacks a
        permission."""
        if field_name not in GRAPHQL_FIELDS + NESTED_FIELDS:
            raise ValueError(f"unknown field {field_name!r}; one of {GRAPHQL_FIELDS + NESTED_FIELDS}")
        with self._state.lock:
            self._state.graphql_failures[field_name] = {
                "message": message,
                "extensions": {"statusCode": status, "errorType": error_type},
            }

    async def _handle_graphql(self, request: web.Request) -> web.StreamResponse:
        raw = (await request.read()).decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        query = parsed.get("query") if isinstance(parsed, dict) else None
        variables = parsed.get("variables") if isinstance(parsed, dict) else None
        if not isinstance(variables, dict):
            variables = {}
        operation, fields = _read_operation(query)
        authorized = request.headers.get("Authorization") == self.expected_authorization
        record = GraphQLRequest(
            at=time.monotonic(),
            field=fields[0].name.value if fields else None,
            operation=operation.name.value if operation is not None and operation.name else None,
            variables=variables,
            status=0,
            authorized=authorized,
            query=query if isinstance(query, str) else None,
            operation_type=operation.operation.value if operation is not None else None,
        )
        with self._state.lock:
            self._state.graphql_requests.append(record)
        status, answer = await self._graphql(request, query, variables, fields, authorized)
        record.status, record.answer = status, answer
        return web.json_response(answer, status=status)

    async def _graphql(
        self,
        request: web.Request,
        query: object,
        variables: dict[str, Any],
        fields: list[FieldNode],
        authorized: bool,
    ) -> tuple[int, dict[str, Any]]:
        if request.method != "POST":
            return 405, {"errors": [{"message": f"{request.method} is not supported; use POST"}]}
        if not authorized:
            return 401, {"code": 401, "message": "Unauthorized"}
        if "compass-beta" not in request.headers.get("X-ExperimentalApi", ""):
            return 200, {
                "data": None,
                "errors": [
                    {
                        "message": "this field is in beta: send the header X-ExperimentalApi: compass-beta",
                        "extensions": {"statusCode": 400, "errorType": "BETA_API_NOT_OPTED_IN"},
                    }
                ],
            }
        if not isinstance(query, str):
            return 400, {"errors": [{"message": "the body must be JSON with a query string"}]}
        schema = await asyncio.to_thread(compass_graphql.schema) if self.graphql_schema else None
        api = _CompassApi(self)
        with self._state.lock:
            if schema is not None:
                return 200, compass_graphql.execute_request(schema, query, variables, {"compass": api})
            return 200, _answer_by_hand(api, query, fields, variables)
