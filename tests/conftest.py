"""Fixtures shared by the test packages: Atlassian's Compass GraphQL schema and the fake's two modes."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema

from tests import compass_graphql
from tests.proxy_net import clean_proxy_env, company_ca, tinyproxy_factory, tls_compass_factory

__all__ = ["clean_proxy_env", "company_ca", "tinyproxy_factory", "tls_compass_factory"]


@pytest.fixture(scope="session")
def compass_schema() -> GraphQLSchema:
    """The published schema, built once per run; tests that need it skip when it is not there."""
    built = compass_graphql.schema()
    if built is None:
        pytest.skip(f"the Compass GraphQL schema is not there ({compass_graphql.SDL_PATH})")
    return built


@pytest.fixture(params=["schema", "by-hand"])
def graphql_schema(request: pytest.FixtureRequest) -> bool:
    """Both ways the fake answers GraphQL: executed against the real schema (skipped without it), and
    by hand. Pass it as ``FakeCompass(graphql_schema=...)``."""
    if request.param == "schema":
        request.getfixturevalue("compass_schema")
        return True
    return False
