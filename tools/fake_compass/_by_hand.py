"""A GraphQL answer without Atlassian's schema, for checkouts where the schema is not next to them.

When the published schema is missing (or ``graphql_schema=False``), the fake still has to answer in
the shapes Compass would: only the fields the document selects, under their aliases, inline fragments
chosen by ``__typename``, nested fields called with their arguments and a scripted failure as null
beside a top-level error. This is that small executor, over the same resolvers as the real one.
"""

from __future__ import annotations

from typing import Any

import graphql
from graphql.language import FieldNode, InlineFragmentNode, SelectionSetNode
from graphql.utilities import value_from_ast_untyped

from tools.fake_compass._resolvers import GRAPHQL_FIELDS, _CompassApi


def _answer_by_hand(
    api: _CompassApi, query: str, fields: list[FieldNode], variables: dict[str, Any]
) -> dict[str, Any]:
    """The answer without the schema: the same resolvers, arguments read from the document."""
    if not fields:
        try:
            graphql.parse(query)
        except graphql.GraphQLError as exc:
            return {"errors": [exc.formatted]}
        return {"errors": [{"message": "the query selects no field under compass"}]}
    errors: list[dict[str, Any]] = []
    for node in fields:
        if node.name.value not in GRAPHQL_FIELDS:
            message = f"Cannot query field {node.name.value!r} (this fake knows {GRAPHQL_FIELDS})"
            return {"errors": [{"message": message}]}
    root = {name: getattr(api, name) for name in GRAPHQL_FIELDS}
    try:
        data = _project(root, fields, variables, ["compass"], errors)
    except TypeError as exc:
        return {"errors": [{"message": f"wrong arguments: {exc}"}]}
    return {"data": {"compass": data}, **({"errors": errors} if errors else {})}


def _selected(selections: SelectionSetNode | None, typename: object) -> list[FieldNode]:
    """The fields selected on an object of this ``__typename``: its own, and those of the inline
    fragments on its type (all of them when the object does not say its type)."""
    out: list[FieldNode] = []
    for selection in selections.selections if selections is not None else ():
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition.name.value if selection.type_condition else None
            if condition is None or typename is None or condition == typename:
                out.extend(_selected(selection.selection_set, typename))
    return out


def _project(
    value: dict[str, Any],
    fields: list[FieldNode],
    variables: dict[str, Any],
    path: list[str | int],
    errors: list[Any],
) -> dict[str, Any]:
    """What a GraphQL server answers over the resolvers' values: the selected fields only (under
    their aliases), a callable field called with its arguments, and a field error (a scripted
    failure) as null beside a top-level error with the field's path."""
    out: dict[str, Any] = {}
    for node in fields:
        key = (node.alias or node.name).value
        item = value.get(node.name.value)
        if callable(item):
            arguments = {
                a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()
            }
            try:
                item = item(None, **arguments)
            except graphql.GraphQLError as exc:
                error = graphql.GraphQLError(
                    exc.message, nodes=[node], path=[*path, key], extensions=exc.extensions
                )
                errors.append(dict(error.formatted))
                item = None
        out[key] = _project_value(item, node.selection_set, variables, [*path, key], errors)
    return out


def _project_value(
    value: Any,
    selections: SelectionSetNode | None,
    variables: dict[str, Any],
    path: list[str | int],
    errors: list[Any],
) -> Any:
    if selections is None:
        return value
    if isinstance(value, list):
        return [_project_value(v, selections, variables, [*path, i], errors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _project(value, _selected(selections, value.get("__typename")), variables, path, errors)
    return value
