"""What every destination's section says about reaching it: the proxy, its credentials, the extra
CAs, the timeout and the rate budget. ``compass`` and ``jira`` inherit these keys with their checks,
so both are validated (and documented in the schema) the same way; ``daemon.config.network`` holds
the checks themselves, free of pydantic for the HTTP layer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from daemon.config.network import check_ca_file, check_credentials_file, check_proxy_url
from daemon.config.types import Duration, Strict, resolve_path

__all__ = ["NetworkSection", "readable_file"]


def readable_file(v: Path | None, info: ValidationInfo) -> Path | None:
    """A file setting, resolved against the configuration's directory and checked readable (not in
    the lenient load of a command that needs no credentials)."""
    if v is None:
        return None
    v = resolve_path(v, info)
    if (info.context or {}).get("lenient"):
        return v
    if not v.is_file():
        raise ValueError(f"file does not exist: {v}")
    if not os.access(v, os.R_OK):
        raise ValueError(f"file is not readable: {v}")
    if info.field_name == "proxy_credentials_file":
        check_credentials_file(v)
    elif info.field_name == "ca_file":
        check_ca_file(v)
    return v


class NetworkSection(Strict):
    """The keys a destination's section shares with the others (``NetworkSettings`` for the HTTP
    layer); ``section`` is the section's own name, which messages name its keys by."""

    section: ClassVar[str]

    timeout: Duration = 30.0
    rate_limit_per_minute: int = Field(default=100, ge=0)
    burst: int = Field(default=10, ge=1)
    # None: the environment's HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "": no proxy at all; else this proxy
    proxy: str | None = None
    proxy_credentials_file: Path | None = None
    ca_file: Path | None = None

    @field_validator("proxy_credentials_file", "ca_file")
    @classmethod
    def _network_file_readable(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return readable_file(v, info)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, v: str | None) -> str | None:
        return None if v is None else check_proxy_url(v)

    @model_validator(mode="after")
    def _burst_below_rate(self) -> Self:
        if self.rate_limit_per_minute and self.burst >= self.rate_limit_per_minute:
            raise ValueError("burst must be smaller than rate_limit_per_minute")
        return self
