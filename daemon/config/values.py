"""The configuration's plain values, without the models: durations, listen addresses, paths, globs.

Free of pydantic, so that commands which only need a value or two (``status``, ``--since``) do not
pay for loading the configuration's models.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path

__all__ = [
    "default_state_dir",
    "job_matches",
    "parse_duration",
    "parse_listen",
    "resolve",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_LISTEN = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``2s``, ``500ms``, ``5m``, ``1h``, ``1d`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 2s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 2s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY`` (its first entry), else ``state`` beside the configuration."""
    return Path(os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "state")


def resolve(path: Path, base_dir: Path | None) -> Path:
    """``~`` expanded, relative to the configuration file's directory, normalised."""
    path = path.expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return Path(os.path.normpath(path))


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port), accepting loopback hosts only.

    The endpoints carry no authentication, so a typo such as ``0.0.0.0`` must be refused rather than
    expose the daemon's state to the network.
    """
    m = _LISTEN.match(value.strip())
    if m is None:
        raise ValueError(
            f"listen {value!r}: expected host:port, such as 127.0.0.1:9464, [::1]:9464 or localhost:9464"
        )
    host = m.group("v6") or m.group("host")
    port = int(m.group("port"))
    if port > 65535:
        raise ValueError(f"listen {value!r}: port {port} is out of range (0-65535)")
    if host.lower() == "localhost":
        return "localhost", port
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is None or not addr.is_loopback or (m.group("v6") is None) != (addr.version == 4):
        raise ValueError(
            f"listen {value!r}: only loopback addresses are accepted (127.0.0.1, [::1], localhost); "
            "buildtail opens no listening socket beyond this host"
        )
    return str(addr), port


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out += "(?:.*/)?"  # zero or more folders, as in .gitignore: **/seed-job names seed-job too
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def job_matches(pattern: str, job: str) -> bool:
    """Glob over job full names: ``*`` stays inside one folder, ``**`` crosses folders, and ``**/``
    at the start of a part stands for zero or more folders (``**/seed`` names ``seed`` too)."""
    return _glob(pattern).match(job) is not None
