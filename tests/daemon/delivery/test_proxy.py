"""Reaching Compass through a real proxy (tinyproxy) and a TLS-inspecting firewall's CA.

The sender's transport and the GraphQL client (doctor) against the fake Compass serving HTTPS with
a certificate from a CA made here; tinyproxy's own log tells whether a request went through it.
Where something fails, ``doctor`` must say what in one line: DNS, refused, the proxy's 407 or
refused CONNECT, or the TLS issuer it was shown with "set compass.ca_file".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.config import CompassSettings
from daemon.sinks import SendResult
from daemon.sinks.compass.admin import Target, doctor
from daemon.sinks.compass.graphql import CompassGraphQL
from daemon.sinks.compass.http import no_proxy_matches, route
from daemon.sinks.compass.transport import CompassTransport
from tests.daemon.delivery.test_compass_transport import body
from tests.proxy_net import CA_ORG, CompanyCA
from tools.fake_compass import FakeCompass
from tools.tinyproxy import Tinyproxy, free_port

pytestmark = pytest.mark.usefixtures("clean_proxy_env")

ProxyFactory = Callable[..., Tinyproxy]
CompassFactory = Callable[..., FakeCompass]
USER, PASSWORD = "builder", "pr0xy-Pa55-never-shown"
WANTED = [Target("build01.example.com", None)]


def settings(fake: FakeCompass | None, ca: CompanyCA | None, **kw: Any) -> CompassSettings:
    data: dict[str, Any] = {
        "base_url": fake.base_url if fake else "https://127.0.0.1:9/gateway/api",
        "api_token": fake.token if fake else "tok",
        "cloud_id": fake.cloud_id if fake else "cloud-123",
        "email": fake.email if fake else "bot@example.com",
        "timeout": 5.0,
        **kw,
    }
    if ca is not None:
        data["ca_file"] = str(ca.ca_file)
    return CompassSettings.model_validate(data)


async def send(compass: CompassSettings, fake: FakeCompass | None) -> SendResult:
    transport = CompassTransport(compass)
    try:
        return await transport.send(body(fake) if fake else {})
    finally:
        await transport.close()


async def run_doctor(compass: CompassSettings) -> list[str]:
    client = CompassGraphQL(compass)
    try:
        lines, _ = await doctor(client, compass, WANTED)
    finally:
        await client.close()
    return lines


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("PROBLEM")]


def credentials_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "proxy-credentials"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


# --- delivered through the proxy --------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
async def test_events_go_through_the_proxy_named_in_the_environment(
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    company_ca: CompanyCA,
    tls_compass_factory: CompassFactory,
    tinyproxy_factory: ProxyFactory,
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port])
    monkeypatch.setenv(variable, proxy.url)
    result = await send(settings(fake, company_ca), fake)
    assert (result.outcome, result.status) == ("accepted", 202), result.detail
    assert len(fake.events) == 1
    assert proxy.connects(fake.port) == 1, proxy.log()


async def test_lower_case_variable_wins_over_upper_case(
    monkeypatch: pytest.MonkeyPatch,
    company_ca: CompanyCA,
    tls_compass_factory: CompassFactory,
    tinyproxy_factory: ProxyFactory,
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port])
    monkeypatch.setenv("https_proxy", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = await send(settings(fake, company_ca), fake)
    assert result.outcome == "accepted", result.detail
    assert proxy.connects(fake.port) == 1


async def test_events_and_graphql_go_through_compass_proxy_with_credentials_from_the_file(
    tmp_path: Path,
    company_ca: CompanyCA,
    tls_compass_factory: CompassFactory,
    tinyproxy_factory: ProxyFactory,
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port], credentials=(USER, PASSWORD))
    compass = settings(
        fake,
        company_ca,
        proxy=proxy.url,
        proxy_credentials_file=credentials_file(tmp_path, f"{USER}:{PASSWORD}\n"),
    )
    result = await send(compass, fake)
    assert (result.outcome, result.status) == ("accepted", 202), result.detail
    lines = await run_doctor(compass)
    assert f"connecting to {fake.site_url} through proxy {proxy.url} (from compass.proxy)" in lines[0], lines
    assert not [p for p in problems(lines) if "event source" not in p], lines  # reached: only Compass's state
    assert proxy.connects(fake.port) >= 2  # the event's session; the tenant lookup's and GraphQL's
    assert PASSWORD not in "\n".join(lines) and PASSWORD not in repr(route(compass, fake.base_url))


async def test_missing_or_wrong_proxy_credentials_are_named_by_doctor(
    tmp_path: Path,
    company_ca: CompanyCA,
    tls_compass_factory: CompassFactory,
    tinyproxy_factory: ProxyFactory,
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port], credentials=(USER, PASSWORD))
    compass = settings(
        fake, company_ca, proxy=proxy.url, proxy_credentials_file=credentials_file(tmp_path, f"{USER}:wrong")
    )
    result = await send(compass, fake)
    assert result.outcome == "retry" and "401" in result.detail, result.detail  # tinyproxy's answer
    [problem] = problems(await run_doctor(compass))
    assert f"the proxy {proxy.url} refused: 401" in problem, problem
    assert f"check the user:password in {compass.proxy_credentials_file}" in problem
    without = settings(fake, company_ca, proxy=proxy.url)
    [problem] = problems(await run_doctor(without))
    assert "407 Proxy Authentication Required" in problem, problem
    assert "set compass.proxy_credentials_file" in problem
    assert fake.events == []


async def test_a_connect_the_proxy_does_not_allow_is_named(
    company_ca: CompanyCA, tls_compass_factory: CompassFactory, tinyproxy_factory: ProxyFactory
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port + 1 if fake.port < 65535 else fake.port - 1])
    [problem] = problems(await run_doctor(settings(fake, company_ca, proxy=proxy.url)))
    assert f"the proxy {proxy.url} refused to CONNECT to 127.0.0.1:{fake.port}: HTTP 403" in problem


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def test_an_https_proxy_is_spoken_to_over_tls_verified_with_the_ca_file(
    company_ca: CompanyCA, tls_compass_factory: CompassFactory, tinyproxy_factory: ProxyFactory
) -> None:
    """An ``https://`` proxy: TLS to the proxy (verified like Compass's, so the CA file counts), then
    TLS to Compass inside the CONNECT tunnel. Here TLS in front of tinyproxy plays that proxy."""
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port])

    async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(front, "127.0.0.1", 0, ssl=company_ca.server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await send(settings(fake, company_ca, proxy=f"https://127.0.0.1:{port}"), fake)
        assert (result.outcome, result.status) == ("accepted", 202), result.detail
        assert proxy.connects(fake.port) == 1
    finally:
        server.close()


# --- the proxy left out ----------------------------------------------------------------------------


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "example.com, 127.0.0.1", "*", "127.0.0.1:{port}"])
async def test_no_proxy_bypasses_the_proxy(
    no_proxy: str, monkeypatch: pytest.MonkeyPatch, company_ca: CompanyCA, tls_compass_factory: CompassFactory
) -> None:
    fake = tls_compass_factory()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # a dead proxy: must not matter
    monkeypatch.setenv("NO_PROXY", no_proxy.format(port=fake.port))
    result = await send(settings(fake, company_ca), fake)
    assert result.outcome == "accepted", result.detail


async def test_no_proxy_for_another_port_does_not_bypass(
    monkeypatch: pytest.MonkeyPatch, company_ca: CompanyCA, tls_compass_factory: CompassFactory
) -> None:
    fake = tls_compass_factory()
    dead = free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1:{fake.port + 1}")
    compass = settings(fake, company_ca)
    assert (await send(compass, fake)).outcome == "retry"
    [problem] = problems(await run_doctor(compass))
    assert problem.startswith(f"PROBLEM  cannot connect to the proxy http://127.0.0.1:{dead}")


async def test_empty_compass_proxy_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, company_ca: CompanyCA, tls_compass_factory: CompassFactory
) -> None:
    fake = tls_compass_factory()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    compass = settings(fake, company_ca, proxy="")
    assert (await send(compass, fake)).outcome == "accepted"
    assert "directly (compass.proxy is empty" in (await run_doctor(compass))[0]


@pytest.mark.parametrize(
    ("value", "host", "port", "bypassed"),
    [
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        (".example.com", "badexample.com", 443, False),
        ("EXAMPLE.com:443", "example.com", 443, True),
        ("example.com:8443", "example.com", 443, False),
        ("[::1]:443, localhost", "::1", 443, True),
        ("*", "anything.example", 80, True),
        ("", "example.com", 443, False),
    ],
)
def test_no_proxy_forms(value: str, host: str, port: int, bypassed: bool) -> None:
    assert no_proxy_matches(value, host, port) is bypassed


# --- TLS through an inspecting firewall ------------------------------------------------------------


async def test_without_the_ca_file_tls_fails_and_doctor_names_the_issuer(
    company_ca: CompanyCA, tls_compass_factory: CompassFactory, tinyproxy_factory: ProxyFactory
) -> None:
    fake = tls_compass_factory()
    proxy = tinyproxy_factory([fake.port])
    compass = settings(fake, None, proxy=proxy.url)
    result = await send(compass, fake)
    assert result.outcome == "retry" and "certificate verify failed" in result.detail, result.detail
    lines = await run_doctor(compass)
    assert len(problems(lines)) == 1, lines
    [problem] = problems(lines)
    assert f"O={CA_ORG}" in problem and "set compass.ca_file" in problem, problem
    assert fake.events == [] and fake.tenant_info_requests == 0  # nothing crossed the unverified probe
    with_ca = settings(fake, company_ca, proxy=proxy.url)
    assert (await send(with_ca, fake)).outcome == "accepted"


# --- not reached at all ------------------------------------------------------------------------------


async def test_dns_failure_is_named() -> None:
    compass = CompassSettings.model_validate(
        {"site": "compass.invalid", "api_token": "t", "cloud_id": "c", "email": "bot@example.com"}
    )
    [problem] = problems(await run_doctor(compass))
    assert "name resolution (DNS) failed for compass.invalid" in problem, problem


async def test_connection_refused_is_named() -> None:
    port = free_port()
    compass = settings(None, None, base_url=f"https://127.0.0.1:{port}/gateway/api")
    [problem] = problems(await run_doctor(compass))
    assert f"connection to 127.0.0.1:{port} refused" in problem, problem
    assert "directly (no compass.proxy and no https_proxy/HTTPS_PROXY set)" in (await run_doctor(compass))[0]
    assert os.environ.get("HTTPS_PROXY") is None
