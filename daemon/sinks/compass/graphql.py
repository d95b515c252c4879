"""Compass's GraphQL API as buildtail uses it: the documents it sends, the client, and reading answers.

GraphQL answers fail in several places at once, all with HTTP 200: top-level ``errors`` (possibly
beside partial data), a ``QueryError`` in place of the object (its ``extensions`` a list), and
mutation payloads with ``success: false`` (their errors' ``extensions`` one object). Each reader
checks all of them and turns every failure into a ``GraphQLError``. The documents are declared with
``graphql_document`` so that the tests check each one against Atlassian's published schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from daemon.config import CompassSettings
from daemon.delivery.budget import TokenBucket
from daemon.sinks.compass.answers import NOT_COMPASS_HINT, Answer, who_answered
from daemon.sinks.compass.http import open_session

__all__ = [
    "EVENT_TYPES",
    "CompassGraphQL",
    "EventSource",
    "GraphQLError",
    "NotCompassError",
    "Operation",
    "attach_operation",
    "brief",
    "compass_field",
    "component_of",
    "component_operation",
    "create_operation",
    "documents",
    "find_operation",
    "graphql_document",
    "mutation_payload",
    "query_error",
    "read_attach",
    "read_component",
    "read_create",
    "read_find",
    "tenant_cloud_id",
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
    """``cause``: the connection error when Compass could not be reached at all (``doctor`` explains it)."""

    def __init__(self, message: str, status: int | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.cause = cause


class NotCompassError(GraphQLError):
    """Something other than Compass answered (a proxy's block page, a captive portal, a redirect to
    a login page): the message names the status, the content type and the page's title or the
    redirect's host. Its status is not Compass's, so it is no verdict on the credentials."""

    def __init__(self, url: str, answer: Answer) -> None:
        super().__init__(
            f"{url}: something other than Compass answered ({answer.describe()}); {NOT_COMPASS_HINT}"
        )
        self.answer = answer


async def _answer(resp: aiohttp.ClientResponse) -> Answer:
    return Answer(
        resp.status,
        resp.headers.get("Content-Type"),
        await resp.text(errors="replace"),
        resp.headers.get("Location"),
    )


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


def create_operation(cloud_id: str, external_id: str, event_type: str = "BUILD") -> Operation:
    return Operation(
        _CREATE,
        {"input": {"cloudId": cloud_id, "externalEventSourceId": external_id, "eventType": event_type}},
    )


def attach_operation(component_id: str, source_id: str) -> Operation:
    return Operation(_ATTACH, {"input": {"componentId": component_id, "eventSourceId": source_id}})


class CompassGraphQL:
    """The few GraphQL calls buildtail needs; every request spends the shared rate budget."""

    def __init__(self, settings: CompassSettings, bucket: TokenBucket | None = None) -> None:
        self._settings = settings
        self._bucket = bucket
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = open_session(self._settings, aiohttp.ClientTimeout(total=self._settings.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def tenant_cloud_id(self) -> str:
        """The site's cloudId from ``/_edge/tenant_info`` (no authentication needed)."""
        return await tenant_cloud_id(self._open(), self._settings.site_url)

    async def call(self, operation: Operation) -> object:
        """The parsed JSON answer; what it says is read by the ``read_*`` functions."""
        if self._bucket is not None:
            await self._bucket.acquire()
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self._settings.email, self._settings.token()),
            "Content-Type": "application/json",
            "X-ExperimentalApi": "compass-beta, compass-prototype",
        }
        body = json.dumps({"query": operation.document, "variables": operation.variables})
        url = self._settings.graphql
        try:
            async with self._open().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                answer = await _answer(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GraphQLError(f"{url}: {type(exc).__name__}: {exc}", cause=exc) from None
        who = who_answered(answer, "json")
        if who == "not_compass":
            raise NotCompassError(url, answer)
        status = answer.status
        if status in (401, 403):
            raise GraphQLError(f"Compass refused the credentials (HTTP {status})", status)
        if who != "compass_accepted":
            detail = answer.describe() if answer.html else answer.body[:300]
            raise GraphQLError(f"GraphQL answered HTTP {status}: {detail}", status)
        parsed: object = json.loads(answer.body)  # who_answered has seen it parse
        return parsed

    async def find(self, cloud_id: str, external_id: str, event_type: str = "BUILD") -> EventSource | None:
        """The event source, or None when Compass says it does not exist (and only then)."""
        answer = await self.call(find_operation(cloud_id, external_id, event_type))
        return read_find(answer, external_id, event_type)

    async def component_sources(self, component_id: str) -> list[EventSource]:
        return read_component(await self.call(component_operation(component_id)), component_id)

    async def create(self, cloud_id: str, external_id: str, event_type: str = "BUILD") -> EventSource:
        answer = await self.call(create_operation(cloud_id, external_id, event_type))
        return read_create(answer, external_id, event_type)

    async def attach(self, component_id: str, source: EventSource) -> None:
        answer = await self.call(attach_operation(component_id, source.id))
        read_attach(answer, f"attaching {source.external_id!r} to {component_id}")


# --- reading answers ------------------------------------------------------------------------------
# Each reader takes the whole parsed answer, trusts none of its shape, and turns anything it cannot
# use into a GraphQLError that says what Compass answered.


def brief(value: object) -> str:
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
            texts.append(message if isinstance(message, str) and message else brief(item))
            status = status if status is not None else _status(item.get("extensions"))
        else:
            texts.append(brief(item))
    return "; ".join(texts) or "no error message", status


def compass_field(answer: object, field: str) -> object:
    """``data.compass.<field>``. Top-level errors are a failure even beside data: a field that is null
    next to an error (a missing permission, say) says nothing about whether the object exists."""
    if not isinstance(answer, dict):
        raise GraphQLError(f"GraphQL answered {brief(answer)}, not an object")
    if answer.get("errors"):
        text, status = _messages(answer["errors"])
        raise GraphQLError(f"Compass answered {field} with an error: {text}", status)
    data = answer.get("data")
    compass = data.get("compass") if isinstance(data, dict) else None
    if not isinstance(compass, dict):
        raise GraphQLError(f"the GraphQL answer has no data.compass: {brief(answer)}")
    return compass.get(field)


def _event_source(value: object, where: str) -> EventSource:
    if isinstance(value, dict):
        sid, kind, external = value.get("id"), value.get("eventType"), value.get("externalEventSourceId")
        if isinstance(sid, str) and isinstance(kind, str) and isinstance(external, str):
            return EventSource(sid, kind, external)
    raise GraphQLError(f"{where}: not an event source: {brief(value)}")


def query_error(value: dict[str, Any]) -> tuple[str, int | None]:
    message = value.get("message")
    return (message if isinstance(message, str) and message else "no message"), _status(
        value.get("extensions")
    )


def read_find(answer: object, external_id: str, event_type: str) -> EventSource | None:
    """None only for a QueryError with status 404: anything else unexpected is an error, never
    "not found", so ``setup`` does not create a second source when it could not look."""
    where = f"looking up event source {external_id!r} of type {event_type}"
    value = compass_field(answer, "eventSource")
    kind = value.get("__typename") if isinstance(value, dict) else None
    if isinstance(value, dict) and kind == "EventSource":
        return _event_source(value, where)
    if isinstance(value, dict) and kind == "QueryError":
        message, status = query_error(value)
        if status == 404:
            return None
        raise GraphQLError(f"{where}: {message}", status)
    raise GraphQLError(f"{where}: Compass answered {brief(value)}")


def component_of(answer: object, component_id: str) -> dict[str, Any]:
    """``data.compass.component`` when it is a CompassComponent; a GraphQLError that says why not."""
    value = compass_field(answer, "component")
    kind = value.get("__typename") if isinstance(value, dict) else None
    if isinstance(value, dict) and kind == "CompassComponent":
        return value
    if isinstance(value, dict) and kind == "QueryError":
        message, status = query_error(value)
        if status == 404:
            raise GraphQLError(f"component {component_id} not found ({message})", status)
        raise GraphQLError(f"component {component_id}: {message}", status)
    raise GraphQLError(f"component {component_id}: Compass answered {brief(value)}")


def read_component(answer: object, component_id: str) -> list[EventSource]:
    sources = component_of(answer, component_id).get("eventSources")
    if sources is None:
        return []
    if not isinstance(sources, list):
        raise GraphQLError(f"component {component_id}: eventSources is {brief(sources)}")
    return [_event_source(s, f"component {component_id}") for s in sources]


def mutation_payload(answer: object, field: str, what: str) -> dict[str, Any]:
    """A mutation payload that says ``success: true``; its errors (with HTTP 200) otherwise."""
    payload = compass_field(answer, field)
    if not isinstance(payload, dict):
        raise GraphQLError(f"{what}: Compass answered {field}: {brief(payload)}")
    if payload.get("success") is True:
        return payload
    errors = payload.get("errors")
    if not errors:
        raise GraphQLError(f"{what}: Compass did not report success and gave no error: {brief(payload)}")
    text, status = _messages(errors)
    raise GraphQLError(f"{what}: {text}", status)


def read_create(answer: object, external_id: str, event_type: str = "BUILD") -> EventSource:
    what = f"creating event source {external_id!r} of type {event_type}"
    payload = mutation_payload(answer, "createEventSource", what)
    if payload.get("eventSource") is None:
        raise GraphQLError(
            f"{what}: Compass reported success but returned no event source; "
            "run `buildtail compass setup` again to find it"
        )
    return _event_source(payload["eventSource"], what)


def read_attach(answer: object, what: str) -> None:
    mutation_payload(answer, "attachEventSource", what)


async def tenant_cloud_id(session: aiohttp.ClientSession, site_url: str) -> str:
    """A site's cloudId from ``<site_url>/_edge/tenant_info``, asked without credentials (as
    Atlassian's plugin did); the Jira sink asks the same way for its site. Raises ``GraphQLError``
    (``NotCompassError`` when something else answered)."""
    url = f"{site_url}/_edge/tenant_info"
    try:
        async with session.get(url, allow_redirects=False) as resp:
            answer = await _answer(resp)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GraphQLError(f"{url}: {type(exc).__name__}: {exc}", cause=exc) from None
    who = who_answered(answer, "json")
    if who == "not_compass":
        raise NotCompassError(url, answer)
    if who != "compass_accepted":
        raise GraphQLError(f"{url} answered HTTP {answer.status}", answer.status)
    data = json.loads(answer.body)  # who_answered has seen it parse
    cloud_id = data.get("cloudId") if isinstance(data, dict) else None
    if not isinstance(cloud_id, str):
        raise GraphQLError(f"{url} did not answer with a cloudId")
    return cloud_id
