"""The ``jira`` section: Jira Software Cloud's builds and deployments, beside Compass.

A site admin makes OAuth 2.0 credentials for on-premises tools (Settings -> Apps -> OAuth
credentials) with the Builds and Deployments permissions; buildtail gets a token for them with the
client-credentials grant at ``api_url``'s ``/oauth/token`` and sends to
``{api_url}/jira/{builds|deployments}/0.1/cloud/{cloud_id}/bulk``. Jira stores a build or a
deployment only against issues, so a run is sent only when it carries issue keys (its branch name,
its commit messages, the parameters named here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from daemon.config.section import NetworkSection, readable_file
from daemon.config.types import Duration

__all__ = ["JiraSettings"]

_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,255}$")
_SITE = re.compile(r"^[a-z0-9-]{3,}\.[a-z0-9-]+\.[a-z]{2,}$")  # Atlassian's plugin's site rule


class JiraSettings(NetworkSection):
    """Where and how builds and deployments go to Jira Software Cloud."""

    section: ClassVar[str] = "jira"  # the key messages name (``jira.proxy``)

    site: str  # example.atlassian.net: links, and where the cloud id is looked up
    cloud_id: str | None = Field(default=None, min_length=1)  # None: from https://<site>/_edge/tenant_info
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    builds: bool = True
    deployments: bool = True
    # keys of these projects only (keeps UTF-8, SHA-256 and the like out); empty: any key
    project_keys: tuple[str, ...] = ()
    issue_key_parameters: tuple[str, ...] = ()  # build parameters whose values hold issue keys
    api_url: str = "https://api.atlassian.com"
    batch_window: Duration = 1.0  # how long the first queued update waits for others to share a request
    # timeout, rate_limit_per_minute, burst, proxy, proxy_credentials_file, ca_file: NetworkSection's

    @field_validator("site")
    @classmethod
    def _site_is_host(cls, v: str) -> str:
        v = v.strip().lower()
        if not _SITE.match(v):
            raise ValueError("expected the site's host name, such as example.atlassian.net (not a URL)")
        return v

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http(s) URL such as https://api.atlassian.com")
        return v.rstrip("/")

    @field_validator("project_keys")
    @classmethod
    def _project_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for key in v:
            if not _PROJECT_KEY.match(key):
                raise ValueError(
                    f"{key!r} is not a Jira project key (an upper-case letter, then upper-case letters, "
                    "digits or _, such as ABC)"
                )
        return v

    @field_validator("client_secret_file")
    @classmethod
    def _file_readable(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return readable_file(v, info)

    @model_validator(mode="after")
    def _one_of_each(self) -> JiraSettings:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("set exactly one of client_secret and client_secret_file")
        if not (self.builds or self.deployments):
            raise ValueError("builds and deployments are both false: nothing would be sent to Jira")
        return self

    @property
    def token_url(self) -> str:
        return f"{self.api_url}/oauth/token"

    @property
    def site_url(self) -> str:
        return f"https://{self.site}"

    def bulk_url(self, kind: str, cloud_id: str) -> str:
        """``kind``: ``builds`` or ``deployments``."""
        return f"{self.api_url}/jira/{kind}/0.1/cloud/{cloud_id}/bulk"

    def secret(self) -> str:
        """The client secret; read from its file each time, so a rotated credential is picked up."""
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        assert self.client_secret_file is not None
        return self.client_secret_file.read_text(encoding="utf-8").strip()
