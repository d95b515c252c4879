"""``buildtail doctor`` for the ``jira`` section: read-only checks, one line each, in the order a
fault would hide the next one - the network path, the cloud id, the credentials, each permission.

- The network path: any HTTP answer from ``jira.api_url`` means it is reachable; a failure is named
  by ``daemon.sinks.compass.reach`` (DNS, refused, timeout, the proxy's 407 or refused CONNECT, the
  issuer of a certificate not trusted and "set jira.ca_file").
- The cloud id: looked up unauthenticated at ``https://<site>/_edge/tenant_info`` as Atlassian's plugin
  did; a configured ``jira.cloud_id`` that differs from the site's is a problem (everything would go
  to another site, or nowhere).
- The credentials: a token from ``jira.token_url``; a 401, or a 400 naming the client, means the
  client id or secret is wrong.
- Each permission (Builds, Deployments; only those enabled): a bulk request that cannot store
  anything, ``{"builds": []}``, which Jira's schema refuses (minItems 1). ASSUMPTION, not verified
  against Atlassian's text: Jira checks the token's permission before the body, so a 400 means the
  token passed authorisation, and a 401/403 means the permission is missing (Atlassian documents
  403 only in the Connect app's words). Each line therefore says what was seen, not more.

Neither the secret nor a token appears in any line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from daemon.config.jira import JiraSettings
from daemon.sinks.compass.graphql import GraphQLError, tenant_cloud_id
from daemon.sinks.compass.http import ProxySettingError, open_session, route
from daemon.sinks.compass.reach import explain
from daemon.sinks.jira.reply import Reply, read_reply
from daemon.sinks.jira.token import ClientCredentials, TokenRefused, TokenSource

__all__ = ["doctor", "empty_submission", "enabled_kinds"]

PERMISSION = {"builds": "Builds", "deployments": "Deployments"}
# the token endpoint's error codes that name the client (OAuth 2.0, RFC 6749 5.2, and Atlassian's 401)
_WRONG_CLIENT = {"invalid_client", "access_denied", "unauthorized_client"}
_CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_ADMIN_PAGE = "Jira: Settings -> Apps -> OAuth credentials"


def empty_submission(kind: str) -> dict[str, Any]:
    """A bulk body Jira's schema refuses (minItems 1): it cannot store anything."""
    return {kind: []}


def enabled_kinds(jira: JiraSettings) -> tuple[str, ...]:
    return tuple(kind for kind in PERMISSION if getattr(jira, kind))


@dataclass
class _Report:
    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"ok       jira: {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"note     jira: {text}")

    def bad(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"PROBLEM  jira: {text}")


async def doctor(jira: JiraSettings, *, site_url: str | None = None) -> tuple[list[str], int]:
    """(report lines, number of problems). ``site_url``: where the site answers (its https URL;
    a test points it at the local fake)."""
    report = _Report()
    try:
        via = route(jira, jira.api_url)
    except ProxySettingError as exc:
        report.bad(f"the proxy setting cannot be used: {exc}")
        return report.lines, report.problems
    report.ok(f"connecting to {jira.api_url} {via.describe()}")
    timeout = aiohttp.ClientTimeout(total=jira.timeout, connect=min(10.0, jira.timeout))
    async with open_session(jira, timeout) as session:
        if await _reached(session, jira, report):
            cloud_id = await _cloud_id(session, jira, site_url or jira.site_url, report)
            token = await _token(session, jira, report)
            for kind in PERMISSION:
                if kind not in enabled_kinds(jira):
                    report.note(f"jira.{kind} is false: the {PERMISSION[kind]} permission is not checked")
                elif token is not None and cloud_id is not None:
                    await _permission(session, jira, cloud_id, token, kind, report)
    return report.lines, report.problems


async def _reached(session: aiohttp.ClientSession, jira: JiraSettings, report: _Report) -> bool:
    try:
        async with session.get(jira.api_url, allow_redirects=False) as resp:
            status = resp.status
    except _CONNECTION_ERRORS as exc:
        report.bad(await explain(exc, jira, jira.api_url))
        return False
    report.ok(f"{jira.api_url} answers (HTTP {status}): the network path works")
    return True


async def _cloud_id(
    session: aiohttp.ClientSession, jira: JiraSettings, site_url: str, report: _Report
) -> str | None:
    """The cloud id the sink would use, after comparing a configured one with the site's (looked up
    as the sink and ``compass setup`` do: ``tenant_cloud_id``)."""
    site_url = site_url.rstrip("/")
    url = f"{site_url}/_edge/tenant_info"
    found: str | None = None
    try:
        found = await tenant_cloud_id(session, site_url) or None
        why = "" if found else "the cloudId it answered is empty"
    except GraphQLError as exc:
        if exc.cause is not None:
            why = await explain(exc.cause, jira, url)
        else:  # its message starts with the URL, which the line names already
            why = str(exc).removeprefix(f"{url}: ").removeprefix(f"{url} ")
    configured = jira.cloud_id
    if found is None and configured is None:
        report.bad(f"cannot look up the cloud id at {url}: {why}: set jira.cloud_id")
    elif found is None:
        report.note(f"jira.cloud_id {configured!r} not compared with the site's: {url}: {why}")
    elif configured is None:
        report.ok(f"{site_url} has cloud id {found!r} (looked up; jira.cloud_id would skip that)")
    elif found == configured:
        report.ok(f"jira.cloud_id matches the cloud id of {site_url}")
    else:
        report.bad(
            f"{site_url} has cloud id {found!r} but jira.cloud_id is {configured!r}: set jira.cloud_id "
            "to the site's, or leave it out to have it looked up"
        )
    return configured or found


async def _token(session: aiohttp.ClientSession, jira: JiraSettings, report: _Report) -> str | None:
    tokens = TokenSource(jira.token_url, ClientCredentials(jira.client_id, jira.secret))
    try:
        token = await tokens.get(session)
    except TokenRefused as refused:
        report.bad(_refusal(refused.reply, jira))
        return None
    report.ok(f"the credentials work: {jira.token_url} gave a token to client id {jira.client_id!r}")
    return token


def _refusal(reply: Reply, jira: JiraSettings) -> str:
    """Why no token: the credentials, or what answered in the token endpoint's place."""
    if reply.status is None:
        return f"no token from {jira.token_url}: {reply.error}"
    error = reply.data.get("error") if isinstance(reply.data, dict) else None
    if reply.status == 401 or (reply.status == 400 and error in _WRONG_CLIENT):
        return (
            f"{jira.token_url} refused the credentials (HTTP {reply.status}"
            + (f", {error}" if isinstance(error, str) else "")
            + "): the client id or secret is wrong: check jira.client_id and the secret against "
            f"the OAuth credentials in {_ADMIN_PAGE}"
        )
    return f"no token from {jira.token_url}: {reply.summary()}"


async def _permission(
    session: aiohttp.ClientSession,
    jira: JiraSettings,
    cloud_id: str,
    token: str,
    kind: str,
    report: _Report,
) -> None:
    """One empty submission of ``kind`` and what its answer suggests (see the module's ASSUMPTION)."""
    url = jira.bulk_url(kind, cloud_id)
    name = PERMISSION[kind]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"}
    try:
        body = json.dumps(empty_submission(kind))
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            reply = await read_reply(resp)
    except _CONNECTION_ERRORS as exc:
        report.bad(f"the {name} permission not checked: {await explain(exc, jira, url)}")
        return
    seen = f"HTTP {reply.status} to an empty submission"
    if reply.status == 400 and reply.is_json:
        report.ok(
            f"{seen}: the credentials may send {kind} (assumed: Jira checks the {name} permission "
            "before the body)"
        )
    elif reply.status in (401, 403):
        report.bad(
            f"{seen} of {kind}: the credentials probably lack the {name} permission (assumed meaning, "
            f"unverified): add {name} to them in {_ADMIN_PAGE}, or set jira.{kind}: false"
        )
    elif reply.status == 404:
        report.bad(f"{seen} of {kind}: no site with cloud id {cloud_id!r} at {url}: check jira.cloud_id")
    else:
        report.bad(f"{seen} of {kind}: not the 400 expected: {reply.summary()}")
