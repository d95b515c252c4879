"""CompassTransport over real HTTP against the local FakeCompass; Retry-After and backoff arithmetic."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from daemon.config import CompassSettings
from daemon.delivery.sender import BACKOFF_CAP_S, backoff_delay
from daemon.sinks.compass.transport import CompassTransport, parse_retry_after
from tools.fake_compass import FakeCompass, Fault


@pytest.fixture
def compass_options() -> dict[str, Any]:
    return {"email": "bot@example.com", "token": "tok-4242", "cloud_id": "cloud-xyz"}


def compass_settings(compass: FakeCompass, **kw: Any) -> CompassSettings:
    data: dict[str, Any] = {
        "base_url": compass.base_url,
        "api_token": compass.token,
        "cloud_id": compass.cloud_id,
        "email": compass.email,
        "timeout": 2.0,
        **kw,
    }
    return CompassSettings.model_validate(data)


@pytest.fixture
async def transport(compass: FakeCompass) -> AsyncIterator[CompassTransport]:
    t = CompassTransport(compass_settings(compass))
    yield t
    await t.close()


def body(compass: FakeCompass, pipeline_id: str = "app#1", seq: int = 1) -> dict[str, Any]:
    return {
        "cloudId": compass.cloud_id,
        "event": {
            "build": {
                "displayName": "app #1",
                "lastUpdated": "2026-11-20T09:00:01.000Z",
                "updateSequenceNumber": seq,
                "description": "Running",
                "url": "https://jenkins.example.com/job/app/1/",
                "externalEventSourceId": "ci.example.com",
                "buildProperties": {
                    "state": "IN_PROGRESS",
                    "pipeline": {"pipelineId": pipeline_id, "url": None, "displayName": "app"},
                    "startedAt": "2026-11-20T09:00:00.000Z",
                    "completedAt": None,
                },
            }
        },
    }


async def test_accepted(compass: FakeCompass, transport: CompassTransport) -> None:
    result = await transport.send(body(compass, seq=99))
    assert (result.outcome, result.status) == ("accepted", 202)
    assert compass.invalid == []
    (stored,) = compass.events
    assert stored == body(compass, seq=99)
    (req,) = compass.requests
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["User-Agent"].startswith("buildtail/")


async def test_authorization_is_basic_email_token(compass: FakeCompass, transport: CompassTransport) -> None:
    await transport.send(body(compass))
    (req,) = compass.requests
    scheme, _, cred = req.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(cred).decode() == "bot@example.com:tok-4242"


@pytest.mark.parametrize("status", [503, 502, 500, 408, 429])
async def test_transient_statuses_are_retried(
    compass: FakeCompass, transport: CompassTransport, status: int
) -> None:
    compass.script(Fault(status=status))
    result = await transport.send(body(compass))
    assert result.outcome == "retry"
    assert result.status == status
    assert result.retry_after is None
    assert compass.events == []


async def test_429_with_retry_after(compass: FakeCompass, transport: CompassTransport) -> None:
    compass.script(Fault(status=429, retry_after="7"))
    result = await transport.send(body(compass))
    assert (result.outcome, result.status, result.retry_after) == ("retry", 429, 7.0)


async def test_400_is_rejected_with_compass_error(compass: FakeCompass, transport: CompassTransport) -> None:
    bad = body(compass)
    del bad["event"]["build"]["buildProperties"]["startedAt"]
    result = await transport.send(bad)
    assert (result.outcome, result.status) == ("rejected", 400)
    assert "FORMAT_INVALID" in result.detail
    assert "startedAt" in result.detail
    assert len(compass.invalid) == 1


async def test_wrong_token_is_unauthorized(compass: FakeCompass) -> None:
    t = CompassTransport(compass_settings(compass, api_token="wrong-token"))
    try:
        result = await t.send(body(compass))
    finally:
        await t.close()
    assert (result.outcome, result.status) == ("unauthorized", 401)
    assert "Unauthorized" in result.detail
    assert compass.events == []


async def test_404_is_not_found(compass: FakeCompass) -> None:
    t = CompassTransport(compass_settings(compass, base_url=compass.base_url + "/nowhere"))
    try:
        result = await t.send(body(compass))
    finally:
        await t.close()
    assert (result.outcome, result.status) == ("not_found", 404)
    assert "NOT_FOUND" in result.detail


async def test_scripted_404_keeps_error_body(compass: FakeCompass, transport: CompassTransport) -> None:
    compass.script(
        Fault(status=404, body={"errors": [{"type": "CREATE_EVENT_SOURCE_NOT_FOUND", "message": "no"}]})
    )
    result = await transport.send(body(compass))
    assert (result.outcome, result.status) == ("not_found", 404)
    assert "CREATE_EVENT_SOURCE_NOT_FOUND" in result.detail


async def test_connection_reset_is_retried(compass: FakeCompass, transport: CompassTransport) -> None:
    compass.script(Fault(reset=True))
    result = await transport.send(body(compass))
    assert result.outcome == "retry"
    assert result.status is None
    assert result.detail
    # the transport is still usable afterwards
    assert (await transport.send(body(compass))).outcome == "accepted"


async def test_timeout_is_retried(compass: FakeCompass) -> None:
    t = CompassTransport(compass_settings(compass, timeout=0.3))
    compass.script(Fault(delay=3.0))
    try:
        result = await t.send(body(compass))
    finally:
        await t.close()
    assert result.outcome == "retry"
    assert result.status is None
    assert result.detail == "no answer within 0.3s"


async def test_connection_refused_is_retried(compass: FakeCompass) -> None:
    port = compass.port
    compass.stop()
    t = CompassTransport(compass_settings(compass, base_url=f"http://127.0.0.1:{port}/gateway/api"))
    try:
        result = await t.send(body(compass))
    finally:
        await t.close()
    assert result.outcome == "retry"
    assert result.status is None


async def test_redirects_are_not_followed(unused_tcp_port: int) -> None:
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path.endswith("/events"):
            raise web.HTTPFound("https://login.portal.example/sso?next=/events")
        return web.Response(status=202)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    settings = CompassSettings.model_validate(
        {
            "base_url": f"http://127.0.0.1:{unused_tcp_port}/gateway/api",
            "api_token": "t",
            "cloud_id": "c",
            "email": "bot@example.com",
            "timeout": 2.0,
        }
    )
    t = CompassTransport(settings)
    try:
        result = await t.send({"cloudId": "c", "event": {"build": {}}})
    finally:
        await t.close()
        await runner.cleanup()
    # a redirect is a login wall or a wrong base_url, never the event's fault: kept, not dead-lettered
    assert (result.outcome, result.status) == ("not_compass", 302)
    assert "redirect to login.portal.example" in result.detail
    assert "proxy or captive portal" in result.detail
    assert hits == ["/gateway/api/compass/v1/events"]


# --- Retry-After and backoff ------------------------------------------------------------------------


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("0") == 0.0


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC)
    future = format_datetime(now + timedelta(seconds=90), usegmt=True)
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(future, now=now) == 90.0
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:30 GMT", now=now) == 30.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Fri, 99 Nov 2026 25:00:00 GMT", "\u00e9"])
def test_parse_retry_after_garbage(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_delay_bounds() -> None:
    rng = random.Random(1234).random
    for attempts in range(0, 40):
        for _ in range(20):
            d = backoff_delay(attempts, rng)
            assert 0.0 <= d <= min(BACKOFF_CAP_S, 2.0**attempts)
    assert BACKOFF_CAP_S == 300.0
    # full jitter with a fixed draw: exactly the fraction of the ceiling
    assert backoff_delay(0, lambda: 0.5) == 0.5
    assert backoff_delay(3, lambda: 0.5) == 4.0
    assert backoff_delay(8, lambda: 1.0) == 256.0
    assert backoff_delay(9, lambda: 1.0) == 300.0
    assert backoff_delay(1000, lambda: 1.0) == 300.0
    assert backoff_delay(5, lambda: 0.0) == 0.0
