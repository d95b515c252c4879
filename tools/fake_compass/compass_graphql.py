"""Atlassian's published Compass GraphQL schema, for checking what buildtail sends and what the fake answers.

The SDL lives in ``shared/reference/compass-graphql`` next to the checkout and is only read from
there; without it ``schema()`` is None (the tests that need it skip, the fake answers by hand).
Building it takes seconds, so it is built once per process and shared by the tests and the fake.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

__all__ = ["SDL_PATH", "allowed_answer", "execute_request", "problems", "resolve_type", "schema"]

SDL_PATH = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "reference"
    / "compass-graphql"
    / "compass-graphql-4.3.0.graphql.gz"
)
# The gateway's opt-in directive (the documented alternative to the X-ExperimentalApi header) is
# used by documents but not declared in the SDL.
_OPT_IN = (
    "\ndirective @optIn(to: [String!]!) repeatable on "
    "QUERY | MUTATION | FIELD | FRAGMENT_DEFINITION | FRAGMENT_SPREAD | INLINE_FRAGMENT\n"
)
# Error extensions are interfaces; Compass's answers use the generic implementations.
_EXTENSION_TYPES = {
    "QueryErrorExtension": "GenericQueryErrorExtension",
    "MutationErrorExtension": "GenericMutationErrorExtension",
}

_lock = threading.Lock()
_built: list[GraphQLSchema | None] = []


def schema() -> GraphQLSchema | None:
    """The schema, built on first use (thread-safe: the fake's server thread may ask too)."""
    with _lock:
        if not _built:
            if SDL_PATH.exists():
                sdl = gzip.decompress(SDL_PATH.read_bytes()).decode("utf-8")
                _built.append(build_schema(sdl + _OPT_IN))
            else:
                _built.append(None)
        return _built[0]


def _operation(document: Any) -> OperationDefinitionNode:
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return operation


def problems(the_schema: GraphQLSchema, document: str, variables: Mapping[str, Any]) -> list[str]:
    """Why a GraphQL server with this schema would refuse the request: syntax, validation, variables."""
    try:
        parsed = parse(document)
    except GraphQLError as exc:
        return [exc.message]
    errors = validate(the_schema, parsed)
    if errors:
        return [e.message for e in errors]
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return [f"{len(operations)} operations in one document (buildtail sends one)"]
    coerced = get_variable_values(the_schema, operations[0].variable_definitions or (), dict(variables))
    return [e.message for e in coerced] if isinstance(coerced, list) else []


def resolve_type(
    value: Any, _info: GraphQLResolveInfo[Any], abstract_type: GraphQLAbstractType
) -> str | None:
    """Union members are named by the value's ``__typename``; error extensions are the generic kind."""
    if isinstance(value, Mapping) and isinstance(value.get("__typename"), str):
        return str(value["__typename"])
    return _EXTENSION_TYPES.get(abstract_type.name)


def execute_request(
    the_schema: GraphQLSchema, document: str, variables: Mapping[str, Any], root: Any
) -> dict[str, Any]:
    """The answer a GraphQL server with this schema gives: refusals as top-level ``errors`` (no data),
    otherwise the executed data, with an error beside each field whose resolver raised."""
    try:
        parsed = parse(document)
    except GraphQLError as exc:
        return {"errors": [exc.formatted]}
    errors = validate(the_schema, parsed)
    if errors:
        return {"errors": [e.formatted for e in errors]}
    result = execute(
        the_schema, parsed, root_value=root, variable_values=dict(variables), type_resolver=resolve_type
    )
    assert isinstance(result, ExecutionResult), "the resolvers are synchronous"
    return dict(result.formatted)


def allowed_answer(
    the_schema: GraphQLSchema, document: str, variables: Mapping[str, Any], data: Any
) -> list[str]:
    """Why ``data`` is not an answer the schema allows for this request ([] when it is).

    Executing the document over the data itself gives the data back only when every value has the
    field's type and nullability and every selected field is present (and nothing more)."""
    answer = execute_request(the_schema, document, variables, data)
    found = [str(e.get("message")) for e in answer.get("errors") or []]
    if not found and answer.get("data") != data:
        found.append(f"the schema's reading differs: {answer.get('data')!r}")
    return found
