"""Compass event sources: make sure each one this configuration sends to exists as BUILD and is attached.

An event source is identified by ``externalEventSourceId`` *and* ``eventType``. Build events need a
source of type BUILD; a CUSTOM source with the same id (as in widely copied examples) is what makes
builds show as grey "other" events. ``setup`` creates and attaches what is missing (idempotent);
``doctor`` only reads and explains.

GraphQL mutations report failure inside the payload (``success: false``) with HTTP 200, so every
answer is checked for both transport and payload errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from daemon import __version__
from daemon.config import CompassSettings, Settings
from daemon.delivery.budget import TokenBucket
from daemon.events import job_matches

__all__ = [
    "EVENT_TYPES",
    "CompassGraphQL",
    "EventSource",
    "GraphQLError",
    "Target",
    "doctor",
    "setup",
    "targets",
]

EVENT_TYPES = (
    "BUILD",
    "DEPLOYMENT",
    "FLAG",
    "ALERT",
    "INCIDENT",
    "LIFECYCLE",
    "CUSTOM",
    "PUSH",
    "PULL_REQUEST",
)

_FIND = """query buildtailEventSource($cloudId: ID!, $external: ID!, $eventType: CompassEventType!) {
  compass {
    eventSource(cloudId: $cloudId, externalEventSourceId: $external, eventType: $eventType) {
      __typename
      ... on EventSource { id eventType externalEventSourceId }
      ... on QueryError { message extensions { statusCode errorType } }
    }
  }
}"""

_COMPONENT = """query buildtailComponent($id: ID!) {
  compass {
    component(id: $id) {
      __typename
      ... on CompassComponent { id name eventSources { id eventType externalEventSourceId } }
      ... on QueryError { message extensions { statusCode errorType } }
    }
  }
}"""

_CREATE = """mutation buildtailCreateEventSource($input: CreateEventSourceInput!) {
  compass {
    createEventSource(input: $input) {
      success
      eventSource { id eventType externalEventSourceId }
      errors { message extensions { statusCode errorType } }
    }
  }
}"""

_ATTACH = """mutation buildtailAttachEventSource($input: AttachEventSourceInput!) {
  compass {
    attachEventSource(input: $input) {
      success
      errors { message extensions { statusCode errorType } }
    }
  }
}"""


class GraphQLError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class EventSource:
    id: str
    event_type: str
    external_id: str


@dataclass(frozen=True, slots=True)
class Target:
    """One (externalEventSourceId, component) pair this configuration sends to; component may be None."""

    external_id: str
    component_id: str | None


def targets(settings: Settings, job_names: Iterable[str]) -> list[Target]:
    """Every (event source, component) pair the configuration sends to.

    With a per-host template all jobs share one source, attached to every mapped component; with
    ``{job}`` in the template each job has its own source, attached to that job's component.
    """
    assert settings.compass is not None
    compass = settings.compass
    if "{job}" not in compass.event_source:
        external = compass.event_source.format(host=settings.host, job="")
        components: list[str | None] = [*dict.fromkeys(r.component_id for r in compass.components)]
        if not components:
            components.append(None)
        return [Target(external, c) for c in components]
    out: list[Target] = []
    for job in job_names:
        component = next((r.component_id for r in compass.components if job_matches(r.match, job)), None)
        target = Target(compass.event_source.format(host=settings.host, job=job), component)
        if target not in out:
            out.append(target)
    return out


class CompassGraphQL:
    """The few GraphQL calls buildtail needs; every request spends the shared rate budget."""

    def __init__(self, settings: CompassSettings, bucket: TokenBucket | None = None) -> None:
        self._settings = settings
        self._bucket = bucket
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
                headers={"User-Agent": f"buildtail/{__version__}", "Accept": "application/json"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def tenant_cloud_id(self) -> str:
        """The site's cloudId from ``/_edge/tenant_info`` (no authentication needed)."""
        url = f"{self._settings.site_url}/_edge/tenant_info"
        try:
            async with self._open().get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise GraphQLError(f"{url} answered HTTP {resp.status}", resp.status)
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise GraphQLError(f"{url}: {type(exc).__name__}: {exc}") from None
        cloud_id = data.get("cloudId") if isinstance(data, dict) else None
        if not isinstance(cloud_id, str):
            raise GraphQLError(f"{url} did not answer with a cloudId")
        return cloud_id

    async def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        if self._bucket is not None:
            await self._bucket.acquire()
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self._settings.email, self._settings.token()),
            "Content-Type": "application/json",
            "X-ExperimentalApi": "compass-beta, compass-prototype",
        }
        body = json.dumps({"query": query, "variables": variables})
        try:
            async with self._open().post(
                self._settings.graphql, data=body, headers=headers, allow_redirects=False
            ) as resp:
                text = await resp.text(errors="replace")
                if resp.status in (401, 403):
                    raise GraphQLError(f"Compass refused the credentials (HTTP {resp.status})", resp.status)
                if resp.status != 200:
                    raise GraphQLError(f"GraphQL answered HTTP {resp.status}: {text[:300]}", resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphQLError(f"{self._settings.graphql}: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise GraphQLError(f"GraphQL answered something that is not JSON: {text[:200]}") from None
        if data.get("errors") and not data.get("data"):
            raise GraphQLError("; ".join(str(e.get("message", e)) for e in data["errors"]))
        compass = (data.get("data") or {}).get("compass")
        if not isinstance(compass, dict):
            raise GraphQLError("GraphQL answer has no data.compass")
        return compass

    async def find(self, cloud_id: str, external_id: str, event_type: str = "BUILD") -> EventSource | None:
        result = (
            await self._call(_FIND, {"cloudId": cloud_id, "external": external_id, "eventType": event_type})
        ).get("eventSource")
        if not result or result.get("__typename") == "QueryError":
            status = ((result or {}).get("extensions") or {}).get("statusCode")
            if result and status not in (None, 404):
                raise GraphQLError(str(result.get("message")), status)
            return None
        return EventSource(
            result["id"],
            result.get("eventType", event_type),
            result.get("externalEventSourceId", external_id),
        )

    async def component_sources(self, component_id: str) -> list[EventSource]:
        result = (await self._call(_COMPONENT, {"id": component_id})).get("component")
        if not result or result.get("__typename") != "CompassComponent":
            message = (result or {}).get("message", "not found")
            raise GraphQLError(f"component {component_id}: {message}")
        return [
            EventSource(s["id"], s["eventType"], s["externalEventSourceId"])
            for s in result.get("eventSources") or []
        ]

    async def create(self, cloud_id: str, external_id: str) -> EventSource:
        payload = (
            await self._call(
                _CREATE,
                {"input": {"cloudId": cloud_id, "externalEventSourceId": external_id, "eventType": "BUILD"}},
            )
        ).get("createEventSource") or {}
        _check_payload(payload, f"creating event source {external_id!r}")
        source = payload.get("eventSource") or {}
        return EventSource(source["id"], "BUILD", external_id)

    async def attach(self, component_id: str, source: EventSource) -> None:
        payload = await self._call(
            _ATTACH, {"input": {"componentId": component_id, "eventSourceId": source.id}}
        )
        _check_payload(
            payload.get("attachEventSource") or {}, f"attaching {source.external_id!r} to {component_id}"
        )


def _check_payload(payload: dict[str, Any], what: str) -> None:
    if payload.get("success"):
        return
    errors = payload.get("errors") or [{"message": "no success flag in the answer"}]
    status = (errors[0].get("extensions") or {}).get("statusCode")
    raise GraphQLError(f"{what}: " + "; ".join(str(e.get("message")) for e in errors), status)


async def setup(client: CompassGraphQL, cloud_id: str, wanted: list[Target]) -> list[str]:
    """Creates missing BUILD sources and attaches them; returns one line per action. Idempotent."""
    lines: list[str] = []
    sources: dict[str, EventSource] = {}
    for external in dict.fromkeys(t.external_id for t in wanted):
        found = await client.find(cloud_id, external)
        if found is None:
            found = await client.create(cloud_id, external)
            lines.append(f"created event source {external!r} (type BUILD)")
        else:
            lines.append(f"event source {external!r} (type BUILD) exists")
        sources[external] = found
    attached: dict[str, set[str]] = {}
    for target in wanted:
        if target.component_id is None:
            lines.append(
                f"event source {target.external_id!r} is not mapped to a component (compass.components); "
                "events without componentId only show once it is attached to one"
            )
            continue
        if target.component_id not in attached:
            attached[target.component_id] = {
                s.id for s in await client.component_sources(target.component_id)
            }
        source = sources[target.external_id]
        if source.id in attached[target.component_id]:
            lines.append(f"event source {target.external_id!r} is attached to {target.component_id}")
            continue
        await client.attach(target.component_id, source)
        attached[target.component_id].add(source.id)
        lines.append(f"attached event source {target.external_id!r} to {target.component_id}")
    return lines


async def doctor(
    client: CompassGraphQL, compass: CompassSettings, wanted: list[Target]
) -> tuple[list[str], int]:
    """Read-only checks; returns (report lines, number of problems)."""
    lines: list[str] = []
    problems = 0

    def ok(text: str) -> None:
        lines.append(f"ok       {text}")

    def bad(text: str) -> None:
        nonlocal problems
        problems += 1
        lines.append(f"PROBLEM  {text}")

    try:
        cloud_id = await client.tenant_cloud_id()
        if cloud_id == compass.cloud_id:
            ok(f"{compass.site_url} answers; its cloudId matches compass.cloud_id")
        else:
            bad(
                f"{compass.site_url} has cloudId {cloud_id!r} but compass.cloud_id is {compass.cloud_id!r}: "
                "set compass.cloud_id to the site's"
            )
    except GraphQLError as exc:
        bad(f"the site does not answer: {exc}")
    externals = list(dict.fromkeys(t.external_id for t in wanted))
    found: dict[str, EventSource] = {}
    try:
        for external in externals:
            source = await client.find(compass.cloud_id, external)
            if source is not None:
                found[external] = source
                ok(f"event source {external!r} exists with type BUILD")
                continue
            other = [
                t for t in EVENT_TYPES[1:] if await client.find(compass.cloud_id, external, t) is not None
            ]
            if other:
                bad(
                    f"event source {external!r} exists only with type {', '.join(other)}, not BUILD. "
                    'This is what makes builds show as grey "other" events and leaves the build '
                    "success rate wrong. Fix: run `buildtail compass setup --config PATH`, which "
                    "creates the BUILD source and attaches it; then detach the old source from the "
                    "component in Compass."
                )
            else:
                bad(
                    f"event source {external!r} of type BUILD does not exist: run "
                    "`buildtail compass setup --config PATH` (or set compass.auto_setup: true)"
                )
        ok("the credentials work (GraphQL answered)")
        for target in wanted:
            if target.component_id is None or target.external_id not in found:
                continue
            ids = {s.id for s in await client.component_sources(target.component_id)}
            if found[target.external_id].id in ids:
                ok(f"event source {target.external_id!r} is attached to {target.component_id}")
            else:
                bad(
                    f"event source {target.external_id!r} is not attached to {target.component_id}: run "
                    "`buildtail compass setup --config PATH`"
                )
    except GraphQLError as exc:
        if exc.status in (401, 403):
            bad(f"{exc}: check compass.email and the API token (it must belong to that account)")
        else:
            bad(str(exc))
    return lines, problems
