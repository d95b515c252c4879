"""Jira's builds and deployments bulk endpoints as buildtail reaches them: one body, one POST.

An on-premises tool goes through Atlassian's API gateway, with the site's cloud id in the path:
``{api_url}/jira/{builds|deployments}/0.1/cloud/{cloudId}/bulk`` (``api_url`` is
``https://api.atlassian.com``; a test points it at the local fake), with ``Authorization: Bearer``
and a token from ``{api_url}/oauth/token`` (``token.TokenSource``). The session is the one every
Atlassian request of buildtail's gets (``daemon.sinks.compass.http.open_session``: the proxy from
the settings or the environment, the company CA, TLS always verified), and redirects are never
followed: a login wall's redirect is something to name, not to follow with a bearer token.

The transport reads; it does not judge. ``send`` returns a ``Reply`` (the answer, or why there was
none), and ``answers.judge`` decides what it means for each item sent. The one thing decided here is
the token's second chance: a 401 from the bulk endpoint is answered by fetching a new token and
sending once more (``Reply.renewed``), so that a 401 reaching the judge means the credentials.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import aiohttp

from daemon.config.jira import JiraSettings
from daemon.sinks.compass.graphql import tenant_cloud_id
from daemon.sinks.compass.http import open_session
from daemon.sinks.jira.answers import Kind
from daemon.sinks.jira.reply import Reply, read_reply
from daemon.sinks.jira.token import ClientCredentials, TokenRefused, TokenSource

__all__ = ["JiraTransport", "Kind"]

# Atlassian's plugin sent this; Jira's own examples say the same
_CONTENT_TYPE = "application/json; charset=utf-8"


class JiraTransport:
    """One aiohttp session and one token for the process; explicit timeouts. The URLs are the
    settings' (``JiraSettings.token_url``, ``bulk_url``); the cloud id is the configured one, or
    looked up by ``resolve_cloud_id``."""

    def __init__(
        self, jira: JiraSettings, credentials: ClientCredentials, *, tokens: TokenSource | None = None
    ) -> None:
        self._jira = jira
        self.cloud_id = jira.cloud_id or ""
        self.api_url = jira.api_url
        self.timeout = jira.timeout
        self.tokens = tokens or TokenSource(jira.token_url, credentials)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"JiraTransport({self.api_url!r}, cloud_id={self.cloud_id!r}, {self.tokens!r})"

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout, connect=min(10.0, self.timeout))
            self._session = open_session(self._jira, timeout, limit_per_host=4)
        return self._session

    async def resolve_cloud_id(self, site_url: str) -> str:
        """The cloud id: as configured, or looked up once from the site's ``/_edge/tenant_info``
        (without credentials). Raises ``GraphQLError`` naming what went wrong."""
        if not self.cloud_id:
            self.cloud_id = await tenant_cloud_id(self._open(), site_url)
        return self.cloud_id

    async def send(self, kind: Kind, body: dict[str, Any]) -> Reply:
        """POST ``body`` to ``kind``'s bulk endpoint; on a 401, once more with a new token."""
        session = self._open()
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        url = self._jira.bulk_url(kind, self.cloud_id)
        try:
            token = await self.tokens.get(session)
            reply = await self._post(session, url, data, token)
            if reply.status == 401:
                token = await self.tokens.renew(session, token)
                reply = await self._post(session, url, data, token, renewed=True)
        except TokenRefused as refused:
            return refused.reply
        return reply

    async def _post(
        self, session: aiohttp.ClientSession, url: str, data: bytes, token: str, *, renewed: bool = False
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": _CONTENT_TYPE}
        try:
            async with session.post(url, data=data, headers=headers, allow_redirects=False) as resp:
                reply = await read_reply(resp)
        except TimeoutError:
            return Reply.failed("bulk", f"no answer within {self.timeout:g}s")
        except aiohttp.ClientError as exc:
            return Reply.failed("bulk", f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return Reply.failed("bulk", f"{type(exc).__name__}: {exc.strerror or exc}")
        return replace(reply, renewed=renewed)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
