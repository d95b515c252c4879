"""What the proxy and TLS tests share: a CA made for the test (standing in for a TLS-inspecting
firewall's company CA), the fake Compass serving HTTPS with a certificate it issued, real tinyproxy
processes stopped at teardown, and an environment with no proxy variables of the developer's own.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.fake_compass import FakeCompass
from tools.tinyproxy import TINYPROXY, Tinyproxy

__all__ = [
    "CA_ORG",
    "CA_UNIT",
    "PROXY_VARIABLES",
    "CompanyCA",
    "clean_proxy_env",
    "company_ca",
    "tinyproxy_factory",
    "tls_compass_factory",
]

CA_ORG = "Example Corp"
CA_UNIT = "TLS inspection"
PROXY_VARIABLES = ("https_proxy", "http_proxy", "no_proxy", "all_proxy")


@dataclass(frozen=True)
class CompanyCA:
    """The CA's PEM file (what compass.ca_file names) and a server context with a certificate for
    127.0.0.1 that it issued."""

    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable from the developer's shell (either case) leaks into a test or its children."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def company_ca(tmp_path: Path) -> CompanyCA:
    trustme = pytest.importorskip("trustme", reason="trustme is in the test extra")
    ca = trustme.CA(organization_name=CA_ORG, organization_unit_name=CA_UNIT)
    ca_file = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return CompanyCA(ca_file, context)


@pytest.fixture
def tls_compass_factory(
    company_ca: CompanyCA, compass_factory: Callable[..., FakeCompass]
) -> Callable[..., FakeCompass]:
    """The fake Compass over HTTPS with the company CA's certificate (``kw`` as FakeCompass takes
    them); ``compass_factory`` stops it at teardown."""

    def factory(**kw: Any) -> FakeCompass:
        return compass_factory(ssl_context=company_ca.server_context, **kw)

    return factory


@pytest.fixture
def tinyproxy_factory(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """``factory(connect_ports, credentials=None)``: a running tinyproxy; every one is killed at
    teardown, whatever the test did."""
    if TINYPROXY is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
    started: list[Tinyproxy] = []

    def factory(connect_ports: list[int], credentials: tuple[str, str] | None = None) -> Tinyproxy:
        proxy = Tinyproxy(tmp_path, connect_ports, credentials)
        started.append(proxy)
        return proxy.start()

    yield factory
    for proxy in started:
        proxy.stop()
