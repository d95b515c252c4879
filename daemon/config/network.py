"""The checks of the network settings (``compass.proxy``, ``compass.proxy_credentials_file``,
``compass.ca_file``), free of pydantic and aiohttp so that the HTTP layer reads the same values the
configuration validated.

A proxy URL never carries credentials: a URL is printed (logs, ``doctor``, ``ps`` of a shell that
exported it), a file is not. The credentials file is checked for its form only; its content is never
put into a message.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "PROXY_SCHEMES",
    "check_ca_file",
    "check_credentials_file",
    "check_proxy_url",
    "read_proxy_credentials",
]

# aiohttp speaks to an http:// proxy in the clear and to an https:// one over TLS (Python >= 3.11)
PROXY_SCHEMES = ("http", "https")


def check_proxy_url(value: str) -> str:
    """``""`` (no proxy, whatever the environment says) or ``http(s)://host:port``; returned without a
    trailing slash. Inline ``user:password@`` is refused: it belongs in compass.proxy_credentials_file."""
    value = value.strip()
    if value == "":
        return ""
    if "://" not in value:
        raise ValueError("expected a proxy URL with its scheme, such as http://proxy.example:3128")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("expected a proxy URL such as http://proxy.example:3128") from None
    if "@" in parts.netloc:
        raise ValueError(
            "the proxy URL must not hold credentials (they would show wherever the URL is printed); "
            "put user:password in a file and name it in compass.proxy_credentials_file"
        )
    if parts.scheme not in PROXY_SCHEMES:
        raise ValueError(
            f"proxy scheme {parts.scheme or '(none)'!r} is not supported: expected http://host:port "
            "(or https://host:port for a proxy that speaks TLS itself)"
        )
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            "expected a proxy URL with host and port and nothing else, such as http://proxy.example:3128"
        )
    return f"{parts.scheme}://{parts.netloc}"


def read_proxy_credentials(path: Path) -> tuple[str, str]:
    """(user, password) from a file holding one line ``user:password`` (the password may hold ``:``).
    Read on every use, so a rotated password is picked up; a ValueError never quotes the file."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValueError(f"{path}: expected exactly one line user:password, found {len(lines)} lines")
    user, colon, password = lines[0].strip().partition(":")
    if not user or not colon:
        raise ValueError(f"{path}: expected one line user:password (user, a colon, then the password)")
    return user, password


def check_credentials_file(path: Path) -> None:
    try:
        read_proxy_credentials(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; expected one line user:password") from None


def check_ca_file(path: Path) -> None:
    """The bundle loads into an SSL context as ``compass.ca_file`` will be loaded when sending."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"{path}: not a PEM bundle (no -----BEGIN CERTIFICATE----- block)")
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise ValueError(f"{path}: not a PEM bundle of CA certificates ({exc.reason or exc})") from None
