"""Compass event sources: make sure each one this configuration sends to exists as BUILD and is attached.

An event source is identified by ``externalEventSourceId`` *and* ``eventType``. Build events need a
source of type BUILD; a CUSTOM source with the same id (as in widely copied examples) is what makes
builds show as grey "other" events. ``setup`` creates and attaches what is missing (idempotent);
``doctor`` only reads and explains.

GraphQL answers fail in several places at once, all with HTTP 200: top-level ``errors`` (possibly
beside partial data), a ``QueryError`` in place of the object (its ``extensions`` a list), and
mutation payloads with ``success: false`` (their errors' ``extensions`` one object). Each reader
checks all of them and turns every failure into a ``GraphQLError``. The documents are declared with
``graphql_document`` so that the tests check each one against Atlassian's published schema.
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
    "Operation",
    "Target",
    "attach_operation",
    "component_operation",
    "create_operation",
    "doctor",
    "documents",
    "find_operation",
    "graphql_document",
    "read_attach",
    "read_component",
    "read_create",
    "read_find",
    "setup",
    "targets",
]

# Every value of Compass's CompassEventType; BUILD first (doctor looks for the others after it).
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
    "VULNERABILITY",
)

_DOCUMENTS: list[str] = []


def graphql_document(text: str) -> str:
    """Declares a document buildtail sends, so the test suite checks each one against Compass's schema."""
    _DOCUMENTS.append(text)
    return text


def documents() -> tuple[str, ...]:
    """Every GraphQL document declared with ``graphql_document``, in declaration order."""
    return tuple(_DOCUMENTS)


_FIND = graphql_document(
    """query buildtailEventSource($cloudId: ID!, $external: ID!, $eventType: CompassEventType!) {
  compass {
    eventSource(cloudId: $cloudId, externalEventSourceId: $external, eventType: $eventType) {
      __typename
      ... on EventSource { id eventType externalEventSourceId }
      ... on QueryError { message extensions { statusCode errorType } }
    }
  }
}"""
)

_COMPONENT = graphql_document(
    """query buildtailComponent($id: ID!) {
  compass {
    component(id: $id) {
      __typename
      ... on CompassComponent { id name eventSources { id eventType externalEventSourceId } }
      ... on QueryError { message extensions { statusCode errorType } }
    }
  }
}"""
)

_CREATE = graphql_document(
    """mutation buildtailCreateEventSource($input: CreateEventSourceInput!) {
  compass {
    createEventSource(input: $input) {
      success
      eventSource { id eventType externalEventSourceId }
      errors { message extensions { statusCode errorType } }
    }
  }
}"""
)

_ATTACH = graphql_document(
    """mutation buildtailAttachEventSource($input: AttachEventSourceInput!) {
  compass {
    attachEventSource(input: $input) {
      success
      errors { message extensions { statusCode errorType } }
    }
  }
}"""
)


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
class Operation:
    """One GraphQL request, built apart from sending so that tests can check it against the schema."""

    document: str
    variables: dict[str, Any]


def find_operation(cloud_id: str, external_id: str, event_type: str = "BUILD") -> Operation:
    return Operation(_FIND, {"cloudId": cloud_id, "external": external_id, "eventType": event_type})


def component_operation(component_id: str) -> Operation:
    return Operation(_COMPONENT, {"id": component_id})


def create_operation(cloud_id: str, external_id: str) -> Operation:
    return Operation(
        _CREATE,
        {"input": {"cloudId": cloud_id, "externalEventSourceId": external_id, "eventType": "BUILD"}},
    )


def attach_operation(component_id: str, source_id: str) -> Operation:
    return Operation(_ATTACH, {"input": {"componentId": component_id, "eventSourceId": source_id}})


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
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GraphQLError(f"{url}: {type(exc).__name__}: {exc}") from None
        cloud_id = data.get("cloudId") if isinstance(data, dict) else None
        if not isinstance(cloud_id, str):
            raise GraphQLError(f"{url} did not answer with a cloudId")
        return cloud_id

    async def _call(self, operation: Operation) -> object:
        """The parsed JSON answer; what it says is read by the ``read_*`` functions."""
        if self._bucket is not None:
            await self._bucket.acquire()
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self._settings.email, self._settings.token()),
            "Content-Type": "application/json",
            "X-ExperimentalApi": "compass-beta, compass-prototype",
        }
        body = json.dumps({"query": operation.document, "variables": operation.variables})
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
            answer: object = json.loads(text)
        except json.JSONDecodeError:
            raise GraphQLError(f"GraphQL answered something that is not JSON: {text[:200]}") from None
        return answer

    async def find(self, cloud_id: str, external_id: str, event_type: str = "BUILD") -> EventSource | None:
        """The event source, or None when Compass says it does not exist (and only then)."""
        answer = await self._call(find_operation(cloud_id, external_id, event_type))
        return read_find(answer, external_id, event_type)

    async def component_sources(self, component_id: str) -> list[EventSource]:
        return read_component(await self._call(component_operation(component_id)), component_id)

    async def create(self, cloud_id: str, external_id: str) -> EventSource:
        return read_create(await self._call(create_operation(cloud_id, external_id)), external_id)

    async def attach(self, component_id: str, source: EventSource) -> None:
        answer = await self._call(attach_operation(component_id, source.id))
        read_attach(answer, f"attaching {source.external_id!r} to {component_id}")


# --- reading answers ------------------------------------------------------------------------------
# Each reader takes the whole parsed answer, trusts none of its shape, and turns anything it cannot
# use into a GraphQLError that says what Compass answered.


def _brief(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:300] + "..."


def _status(extensions: object) -> int | None:
    """The first statusCode in extensions: a list (QueryError), one object (MutationError, top-level
    errors), or nothing."""
    for item in extensions if isinstance(extensions, list) else [extensions]:
        code = item.get("statusCode") if isinstance(item, dict) else None
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    return None


def _messages(errors: object) -> tuple[str, int | None]:
    """A list of GraphQL errors (top-level or MutationError) -> (their messages, the first status)."""
    items = errors if isinstance(errors, list) else [errors]
    texts: list[str] = []
    status: int | None = None
    for item in items:
        if isinstance(item, dict):
            message = item.get("message")
            texts.append(message if isinstance(message, str) and message else _brief(item))
            status = status if status is not None else _status(item.get("extensions"))
        else:
            texts.append(_brief(item))
    return "; ".join(texts) or "no error message", status


def _compass_field(answer: object, field: str) -> object:
    """``data.compass.<field>``. Top-level errors are a failure even beside data: a field that is null
    next to an error (a missing permission, say) says nothing about whether the object exists."""
    if not isinstance(answer, dict):
        raise GraphQLError(f"GraphQL answered {_brief(answer)}, not an object")
    if answer.get("errors"):
        text, status = _messages(answer["errors"])
        raise GraphQLError(f"Compass answered {field} with an error: {text}", status)
    data = answer.get("data")
    compass = data.get("compass") if isinstance(data, dict) else None
    if not isinstance(compass, dict):
        raise GraphQLError(f"the GraphQL answer has no data.compass: {_brief(answer)}")
    return compass.get(field)


def _event_source(value: object, where: str) -> EventSource:
    if isinstance(value, dict):
        sid, kind, external = value.get("id"), value.get("eventType"), value.get("externalEventSourceId")
        if isinstance(sid, str) and isinstance(kind, str) and isinstance(external, str):
            return EventSource(sid, kind, external)
    raise GraphQLError(f"{where}: not an event source: {_brief(value)}")


def _query_error(value: dict[str, Any]) -> tuple[str, int | None]:
    message = value.get("message")
    return (message if isinstance(message, str) and message else "no message"), _status(
        value.get("extensions")
    )


def read_find(answer: object, external_id: str, event_type: str) -> EventSource | None:
    """None only for a QueryError with status 404: anything else unexpected is an error, never
    "not found", so ``setup`` does not create a second source when it could not look."""
    where = f"looking up event source {external_id!r} of type {event_type}"
    value = _compass_field(answer, "eventSource")
    kind = value.get("__typename") if isinstance(value, dict) else None
    if isinstance(value, dict) and kind == "EventSource":
        return _event_source(value, where)
    if isinstance(value, dict) and kind == "QueryError":
        message, status = _query_error(value)
        if status == 404:
            return None
        raise GraphQLError(f"{where}: {message}", status)
    raise GraphQLError(f"{where}: Compass answered {_brief(value)}")


def read_component(answer: object, component_id: str) -> list[EventSource]:
    value = _compass_field(answer, "component")
    kind = value.get("__typename") if isinstance(value, dict) else None
    if isinstance(value, dict) and kind == "CompassComponent":
        sources = value.get("eventSources")
        if sources is None:
            return []
        if not isinstance(sources, list):
            raise GraphQLError(f"component {component_id}: eventSources is {_brief(sources)}")
        return [_event_source(s, f"component {component_id}") for s in sources]
    if isinstance(value, dict) and kind == "QueryError":
        message, status = _query_error(value)
        if status == 404:
            raise GraphQLError(f"component {component_id} not found ({message})", status)
        raise GraphQLError(f"component {component_id}: {message}", status)
    raise GraphQLError(f"component {component_id}: Compass answered {_brief(value)}")


def _payload(answer: object, field: str, what: str) -> dict[str, Any]:
    """A mutation payload that says ``success: true``; its errors (with HTTP 200) otherwise."""
    payload = _compass_field(answer, field)
    if not isinstance(payload, dict):
        raise GraphQLError(f"{what}: Compass answered {field}: {_brief(payload)}")
    if payload.get("success") is True:
        return payload
    errors = payload.get("errors")
    if not errors:
        raise GraphQLError(f"{what}: Compass did not report success and gave no error: {_brief(payload)}")
    text, status = _messages(errors)
    raise GraphQLError(f"{what}: {text}", status)


def read_create(answer: object, external_id: str) -> EventSource:
    what = f"creating event source {external_id!r}"
    payload = _payload(answer, "createEventSource", what)
    if payload.get("eventSource") is None:
        raise GraphQLError(
            f"{what}: Compass reported success but returned no event source; "
            "run `buildtail compass setup` again to find it"
        )
    return _event_source(payload["eventSource"], what)


def read_attach(answer: object, what: str) -> None:
    _payload(answer, "attachEventSource", what)


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
