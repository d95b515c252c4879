"""Fixtures shared by the test packages: the fake Compass, Atlassian's Compass GraphQL schema, the fake's
two modes, and the real service in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema

from daemon.config import Settings
from tests.inprocess import InProcess, running
from tests.proxy_net import clean_proxy_env, company_ca, tinyproxy_factory, tls_compass_factory
from tests.scripted import ScriptedTransport
from tools.fake_compass import FakeCompass, compass_graphql

__all__ = ["CompassFactory", "clean_proxy_env", "company_ca", "tinyproxy_factory", "tls_compass_factory"]


CompassFactory = Callable[..., FakeCompass]


@pytest.fixture
def compass_factory() -> Iterator[CompassFactory]:
    """Starts fake Compass servers with the given ``FakeCompass`` options, each stopped after the test:
    for a test that needs more than one, or options of its own (TLS has ``tls_compass_factory``)."""
    with ExitStack() as started:

        def start(**options: Any) -> FakeCompass:
            return started.enter_context(FakeCompass(**options))

        yield start


@pytest.fixture
def compass_options() -> dict[str, Any]:
    """The options of the ``compass`` fixture. A package or module that needs others (a token, a
    cloudId, a GraphQL mode) overrides this fixture, not ``compass``."""
    return {}


@pytest.fixture
def compass(compass_factory: CompassFactory, compass_options: dict[str, Any]) -> FakeCompass:
    """The fake Compass of a test, running on 127.0.0.1 for the test's duration."""
    return compass_factory(**compass_options)


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


StartService = Callable[..., Awaitable[InProcess]]

_PACKAGING = {"test_packaging.py", "test_unit_start.py", "test_maintainer_scripts.py"}
_DAEMON_PROCESS_FIXTURES = {"daemon_factory", "scrape"}  # what starts ``buildtail run`` outside tests/e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The markers a test gets from where it lives and what it starts, so none is forgotten: e2e
    for the real daemon process, packaging for the package and the unit, and slow for both."""
    e2e_dir = Path(__file__).parent / "e2e"
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.path.is_relative_to(e2e_dir) or fixtures & _DAEMON_PROCESS_FIXTURES:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
        if item.path.name in _PACKAGING:
            item.add_marker(pytest.mark.packaging)
            item.add_marker(pytest.mark.slow)


@pytest.fixture
async def in_process() -> AsyncIterator[StartService]:
    """``await in_process(settings, transport=None)``: the real ``Service`` started in the test's event
    loop with a ``ScriptedTransport`` (accepting by default), its main loop running as a task; exit and
    shutdown at teardown, where a failed main loop or a body Compass would refuse fails the test."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings, transport: ScriptedTransport | None = None) -> InProcess:
            return await stack.enter_async_context(running(settings, transport))

        yield start
