"""Every aiohttp session buildtail opens to Atlassian: one place decides the proxy, the trusted CAs and
the headers, so that Compass's events, GraphQL and the tenant lookup, and Jira's token and bulk
requests, all reach Atlassian the same way.

The settings are any section with ``proxy``, ``proxy_credentials_file`` and ``ca_file``
(``NetworkSettings``; ``compass`` is the first), and messages name that section's keys (its
``section``: ``compass``, ``jira``). Below, ``compass.proxy`` stands for the section's ``proxy`` key.

The proxy is decided per request by ``route`` (a session middleware applies it), from
``compass.proxy`` or else the environment as curl reads it: ``https_proxy``/``HTTPS_PROXY`` for https
URLs, ``http_proxy``/``HTTP_PROXY`` for http ones, ``no_proxy``/``NO_PROXY`` for the exceptions, the
lower-case name first (set, even empty, it wins). aiohttp's own ``trust_env`` is left off: it would
also read ``~/.netrc``, and it matches NO_PROXY against the host without the port, so ``host:port``
entries would not work and the configuration key could not share its rules. NO_PROXY exempts hosts
from ``compass.proxy`` too, as it does from curl's ``--proxy``.

TLS is verified against the system store plus ``compass.ca_file`` (the company CA of a
TLS-inspecting firewall); there is no way to switch verification off.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from daemon import __version__
from daemon.config.network import PROXY_SCHEMES, read_proxy_credentials

__all__ = [
    "NetworkSettings",
    "ProxySettingError",
    "Route",
    "no_proxy_matches",
    "open_session",
    "route",
    "ssl_context",
]

HEADERS = {"User-Agent": f"buildtail/{__version__}", "Accept": "application/json"}


class NetworkSettings(Protocol):
    """What a sink's settings say about reaching its destination (``CompassSettings`` has these)."""

    section: ClassVar[str]  # the configuration section, whose keys messages name

    @property
    def proxy(self) -> str | None: ...  # None: the environment's; "": no proxy at all; else this one

    @property
    def proxy_credentials_file(self) -> Path | None: ...

    @property
    def ca_file(self) -> Path | None: ...


class ProxySettingError(aiohttp.ClientError):
    """The proxy cannot be used as configured (an unsupported scheme in the environment, an unreadable
    credentials file); a ClientError, so that callers treat it as the connection failure it is."""


@dataclass(frozen=True, slots=True)
class Route:
    """How one URL is reached: ``proxy`` (shown without credentials) or None for a direct connection,
    and ``why`` in words an operator can act on (which variable or key decided it)."""

    proxy: str | None
    why: str
    authorization: str | None = field(default=None, repr=False)  # the Proxy-Authorization header

    def describe(self) -> str:
        return f"through proxy {self.proxy} ({self.why})" if self.proxy else f"directly ({self.why})"


def _env(name: str) -> tuple[str, str] | None:
    """(variable, value) of ``name`` in lower case if set (curl's order), else in upper case."""
    for var in (name.lower(), name.upper()):
        if var in os.environ:
            return var, os.environ[var].strip()
    return None


def no_proxy_matches(value: str, host: str, port: int) -> bool:
    """Whether a NO_PROXY value names ``host:port``, as curl reads it: comma-separated entries, each
    ``*`` (every host), a name (that host and its subdomains; a leading dot changes nothing), an IP
    address (``[::1]`` for IPv6), optionally with ``:port``. CIDR ranges are not understood."""
    host = host.lower().strip("[]")
    for entry in value.lower().split(","):
        entry = entry.strip()
        if entry == "*":
            return True
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            wanted = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, _, wanted = entry.partition(":")
        else:
            name, wanted = entry, ""
        if wanted and wanted != str(port):
            continue
        name = name.lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _bypassed(url: str) -> str | None:
    """The NO_PROXY variable that exempts ``url``, or None."""
    found = _env("no_proxy")
    if found is None or not found[1]:
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return found[0] if no_proxy_matches(found[1], parts.hostname or "", port) else None


def _authorization(compass: NetworkSettings, inline: tuple[str, str] | None) -> str | None:
    if compass.proxy_credentials_file is not None:
        try:
            user, password = read_proxy_credentials(compass.proxy_credentials_file)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ProxySettingError(f"cannot read {compass.section}.proxy_credentials_file: {exc}") from None
        return aiohttp.encode_basic_auth(user, password)
    return aiohttp.encode_basic_auth(*inline) if inline else None


def route(compass: NetworkSettings, url: str) -> Route:
    """The one decision of how buildtail reaches ``url``; see the module's docstring for the order.
    The reasons name the keys of ``compass.section``."""
    scheme, section = urlsplit(url).scheme, compass.section
    if compass.proxy == "":
        return Route(None, f"{section}.proxy is empty: the environment's proxy is ignored")
    if compass.proxy is not None:
        source, value = f"{section}.proxy", compass.proxy
    else:
        found = _env(f"{scheme}_proxy")
        if found is None or not found[1]:
            return Route(None, f"no {section}.proxy and no {scheme}_proxy/{scheme.upper()}_PROXY set")
        source, value = found
    exempt = _bypassed(url)
    if exempt is not None:
        return Route(None, f"{exempt} exempts this host from {source}")
    proxy = URL(value if "://" in value else f"http://{value}")  # curl's default scheme for a bare host
    if proxy.scheme not in PROXY_SCHEMES or not proxy.host:
        raise ProxySettingError(
            f"{source}: scheme {proxy.scheme!r} is not supported (expected http://host:port)"
        )
    inline = (proxy.user or "", proxy.password or "") if proxy.user else None
    shown = str(proxy.with_user(None).with_path("").with_query(None))
    return Route(shown, f"from {source}", _authorization(compass, inline))


class _Router:
    """The session middleware that gives each request the proxy ``route`` decides for its URL."""

    def __init__(self, compass: NetworkSettings) -> None:
        self._compass = compass

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        decided = route(self._compass, str(req.url))
        if decided.proxy is None:
            req.update_proxy(None, None, None)
        else:
            headers = {"Proxy-Authorization": decided.authorization} if decided.authorization else None
            req.update_proxy(URL(decided.proxy), None, headers)
        return await handler(req)


def ssl_context(compass: NetworkSettings) -> ssl.SSLContext:
    """The system's trusted CAs plus ``compass.ca_file``; certificates and host names always checked."""
    context = ssl.create_default_context()
    if compass.ca_file is not None:
        context.load_verify_locations(cafile=str(compass.ca_file))
    return context


def open_session(
    compass: NetworkSettings,
    timeout: aiohttp.ClientTimeout,
    *,
    limit_per_host: int = 0,
) -> aiohttp.ClientSession:
    """A session to Atlassian with the proxy, the CAs and the headers every buildtail request shares."""
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit_per_host=limit_per_host, ssl=ssl_context(compass)),
        headers=HEADERS,
        trust_env=False,
        middlewares=(_Router(compass),),
    )
