"""Why Compass (or Jira) could not be reached, in one line an operator can act
on: the name did not resolve, nothing answered, the proxy refused, or TLS verification failed (and
who issued the certificate that was shown, for the firewall that re-signs TLS with a company CA).

``describe_connection_error`` is the one classification of connection errors. ``peer_issuer`` is a
diagnosis only, run after a verified connection failed: it repeats the handshake through the same
proxy without verifying, reads the issuer of the certificate it is shown, and closes the connection
before anything is sent over it.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from daemon.sinks.compass.http import NetworkSettings, ProxySettingError, Route, route

__all__ = ["describe_connection_error", "explain", "issuer_name", "peer_issuer", "untrusted_issuer"]

# OpenSSL verify codes that mean "the chain ends in a CA this host does not trust"
_UNTRUSTED = {2, 18, 19, 20, 21}
_ATTRIBUTES = {  # DER of the X.520 attribute type OIDs a person recognises an issuer by
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("550406"): "C",
}


def _proxy_variables(section: str) -> str:
    return f"{section}.proxy (or HTTPS_PROXY in the service's environment)"


def untrusted_issuer(exc: BaseException) -> bool:
    """Whether a TLS failure means the certificate's CA is not trusted (rather than, say, expired)."""
    error = getattr(exc, "certificate_error", exc)
    return isinstance(error, ssl.SSLCertVerificationError) and error.verify_code in _UNTRUSTED


def describe_connection_error(
    exc: BaseException,
    via: Route,
    network: NetworkSettings,
    *,
    issuer: str | None = None,
) -> str:
    """One line: what failed, where, and what to do; the advice names the keys of ``network.section``.
    ``issuer``: of the certificate shown, when known."""
    section = network.section
    ca_file = str(network.ca_file) if network.ca_file else None
    credentials_file = str(network.proxy_credentials_file) if network.proxy_credentials_file else None
    proxy_variables = _proxy_variables(section)
    target = f"{getattr(exc, 'host', '?')}:{getattr(exc, 'port', '?')}"
    if isinstance(exc, ProxySettingError):
        return f"the proxy setting cannot be used: {exc}"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        if exc.status in (401, 407):  # tinyproxy answers wrong credentials with 401, squid with 407
            fix = (
                f"check the user:password in {credentials_file} ({section}.proxy_credentials_file)"
                if credentials_file
                else f"put user:password in a file and set {section}.proxy_credentials_file"
            )
            return f"the proxy {via.proxy} refused: {exc.status} {exc.message}: {fix}"
        url = exc.request_info.url
        return (
            f"the proxy {via.proxy} refused to CONNECT to {url.host}:{url.port}: HTTP {exc.status} "
            f"{exc.message}: ask its operators to allow it, or exempt the host with NO_PROXY"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        reason = getattr(error, "verify_message", None) or str(error)
        shown = f"; the certificate shown was issued by {issuer}" if issuer else ""
        if not untrusted_issuer(exc):
            return f"TLS verification of {target} failed: {reason}{shown}"
        fix = (
            f"add that CA to {section}.ca_file ({ca_file} does not hold it)"
            if ca_file
            else f"set {section}.ca_file to a PEM file with that CA (a TLS-inspecting firewall's company CA)"
        )
        return f"TLS verification of {target} failed: {reason}{shown}, which is not trusted: {fix}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return (
            f"name resolution (DNS) failed for {exc.host}: check the host name and this machine's "
            f"resolver; where only a proxy reaches the internet, set {proxy_variables}"
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"cannot connect to the proxy {via.proxy}: {_os_reason(exc)}: check {proxy_variables}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"the TLS handshake with {target} failed: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError):
        return (
            f"connection to {target} refused: nothing listens there or a firewall rejects it; check the "
            f"URL's port, or set {proxy_variables} if the network needs one"
        )
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, TimeoutError)
    ):
        return (
            f"no connection within the timeout, connecting {via.describe()}: a firewall probably drops "
            f"the traffic; set {proxy_variables} if the network needs one"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {target}: {_os_reason(exc)}"
    return f"{type(exc).__name__}: {exc}"


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    return exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``at``."""
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        length, at = int.from_bytes(der[at : at + size], "big"), at + size
    return tag, at, at + length


def issuer_name(der: bytes) -> str:
    """The issuer of a DER certificate as ``CN=..., OU=..., O=..., C=...`` (the names people know)."""
    _, at, _ = _tlv(der, 0)  # Certificate
    _, at, _ = _tlv(der, at)  # TBSCertificate
    tag, _, end = _tlv(der, at)
    if tag == 0xA0:  # [0] version
        _, _, end = _tlv(der, end)  # serialNumber
    _, _, end = _tlv(der, end)  # signature algorithm
    _, at, stop = _tlv(der, end)  # issuer: SEQUENCE OF SET OF AttributeTypeAndValue
    names: list[str] = []
    while at < stop:
        _, item, set_end = _tlv(der, at)
        while item < set_end:
            _, inner, pair_end = _tlv(der, item)
            _, oid_at, oid_end = _tlv(der, inner)
            _, value_at, value_end = _tlv(der, oid_end)
            label = _ATTRIBUTES.get(der[oid_at:oid_end])
            if label:
                names.append(f"{label}={der[value_at:value_end].decode('utf-8', 'replace')}")
            item = pair_end
        at = set_end
    return ", ".join(reversed(names)) or "(an issuer without a name)"


async def peer_issuer(
    compass: NetworkSettings,
    url: str,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> str | None:
    """The issuer of the certificate ``url``'s server (or the firewall in between) presents, through
    the route buildtail uses; None when it cannot be fetched. Diagnosis only: the handshake is not
    verified, so nothing is sent after it (the proxy, if any, gets only its CONNECT)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            via = route(compass, url)
            if via.proxy is None:
                _, writer = await asyncio.open_connection(host, port, ssl=unverified, server_hostname=host)
            else:
                proxy = URL(via.proxy)
                if proxy.scheme != "http":
                    return None
                reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
                request = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
                if via.authorization:
                    request.append(f"Proxy-Authorization: {via.authorization}")
                writer.write(("\r\n".join(request) + "\r\n\r\n").encode("latin-1"))
                status = (await reader.readline()).split()
                while (await reader.readline()).strip():
                    pass
                if len(status) < 2 or status[1] != b"200":
                    return None
                await writer.start_tls(unverified, server_hostname=host)
            tls = writer.get_extra_info("ssl_object")
            der = tls.getpeercert(binary_form=True) if tls is not None else None
            return issuer_name(der) if der else None
    except (OSError, TimeoutError, ValueError, IndexError, aiohttp.ClientError):
        return None
    finally:
        if writer is not None:
            writer.close()


async def explain(exc: BaseException, compass: NetworkSettings, url: str) -> str:
    """``describe_connection_error`` for a failed request to ``url``, with the issuer of the certificate
    shown fetched when TLS verification was what failed."""
    try:
        via = route(compass, url)
    except ProxySettingError as error:
        return describe_connection_error(error, Route(None, "unusable proxy setting"), compass)
    untrusted = isinstance(exc, aiohttp.ClientConnectorCertificateError)
    issuer = await peer_issuer(compass, url) if untrusted else None
    return describe_connection_error(exc, via, compass, issuer=issuer)
