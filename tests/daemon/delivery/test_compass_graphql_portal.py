"""GraphQL and tenant_info through a captive portal: its page or its redirect where Compass's JSON
was expected is a NotCompassError that names what answered, never a traceback from json or aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from daemon.config import CompassSettings
from daemon.sinks.compass.graphql import CompassGraphQL, GraphQLError, NotCompassError
from tests.portal import PORTAL_TITLE, Portal
from tools.fake_compass import FakeCompass


@pytest.fixture
def portal(compass: FakeCompass) -> Iterator[Portal]:
    with Portal(compass.site_url) as p:
        yield p


@pytest.fixture
async def client(compass: FakeCompass, portal: Portal) -> AsyncIterator[CompassGraphQL]:
    settings: dict[str, Any] = {
        "base_url": f"{portal.url}/gateway/api",
        "api_token": compass.token,
        "cloud_id": compass.cloud_id,
        "email": compass.email,
        "timeout": 5.0,
    }
    c = CompassGraphQL(CompassSettings.model_validate(settings))
    yield c
    await c.close()


async def test_a_portal_page_instead_of_graphql_json_is_named(client: CompassGraphQL, portal: Portal) -> None:
    with pytest.raises(NotCompassError) as caught:
        await client.find("cloud", "build01.example.com")
    message = str(caught.value)
    assert message == (
        f"{portal.url}/gateway/api/graphql: something other than Compass answered (HTTP 200 text/html, "
        f"page titled '{PORTAL_TITLE}'); a proxy or captive portal may be in the way"
    )
    assert "\n" not in message and "<" not in message
    assert isinstance(caught.value, GraphQLError)  # the commands' one error type still catches it
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no json traceback inside


async def test_a_portal_page_instead_of_tenant_info_is_named(client: CompassGraphQL, portal: Portal) -> None:
    with pytest.raises(NotCompassError, match=rf"page titled '{PORTAL_TITLE}'.*captive portal"):
        await client.tenant_cloud_id()
    portal.mode = "redirect"
    with pytest.raises(NotCompassError, match=r"HTTP 302 text/html, redirect to portal\.example\.net"):
        await client.tenant_cloud_id()
    assert portal.answers == {"page": 1, "redirect": 1, "through": 0}


async def test_through_the_portal_once_signed_in_compass_answers(
    client: CompassGraphQL, portal: Portal, compass: FakeCompass
) -> None:
    portal.let_through()
    assert await client.tenant_cloud_id() == compass.cloud_id
    assert await client.find(compass.cloud_id, "build01.example.com") is None  # Compass's own "not found"
    assert portal.answers["through"] == 2
