"""A local fake of Atlassian Compass' ``createCompassEvent`` REST endpoint, for tests.

``FakeCompass`` runs an aiohttp server on 127.0.0.1 (random port) in a background thread with its
own event loop, so it can be used from sync and async tests alike::

    with FakeCompass() as compass:
        config.base_url = compass.base_url          # daemon posts to base_url + "/compass/v1/events"
        ...
        compass.wait_for(lambda events: len(events) == 2)

Every request is checked the way the real gateway would: path and method, Basic auth, JSON content
type, the body against ``tests/compass_schema.json`` (and against the shared reference schema in
``../shared`` next to the checkout, when present), and the cloudId. Faults can be scripted per
request (``script(Fault(status=503), Fault(reset=True), ...)``). Like Compass, an event whose
updateSequenceNumber is not higher than the stored one for the same pipelineId is accepted (202)
but not stored (see ``stored`` and ``dropped``).

The same app also fakes what ``buildtail compass setup`` / ``buildtail doctor`` use:
``GET /_edge/tenant_info`` (no auth) and ``POST /gateway/api/graphql`` with an in-memory registry of
event sources (``add_event_source``, ``event_sources()``), components (``add_component``,
``attach``, ``components()``) and their metric sources (``add_metric_source``,
``metric_sources(component_id)``; ``createMetricSource`` refuses a second one for the same
component and metric definition with a 409 ``ALREADY_EXISTS`` error, and ``derived: true`` for a
definition Compass does not derive from events). When Atlassian's published schema sits next to the checkout
(``tests/compass_graphql.py``), each GraphQL request is validated and executed against it, so a
document Compass would refuse is refused here too and answers have the schema's shapes by
construction (``QueryError.extensions`` a list, ``__typename`` only where asked for); without it, or
with ``graphql_schema=False``, the same resolvers answer by hand in the same shapes (the fields the
document selects, inline fragments by ``__typename``, nested fields with arguments called).
``fail_graphql(field, message)`` makes a field answer null beside a top-level error, as Compass does
for a missing permission. GraphQL requests are recorded in ``graphql_requests``, never in
``requests``, and scripted faults do not apply to them. With ``require_event_source=True`` an event
without ``componentId`` whose ``externalEventSourceId`` has no event source of type BUILD is answered
404 ``CREATE_EVENT_SOURCE_NOT_FOUND``, as in Compass's older flow (a CUSTOM source does not count).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import graphql
import jsonschema  # type: ignore[import-untyped]
from aiohttp import web
from graphql.language import FieldNode, InlineFragmentNode, OperationDefinitionNode, SelectionSetNode
from graphql.utilities import value_from_ast_untyped

from tests import compass_graphql

__all__ = [
    "EVENTS_PATH",
    "EVENT_TYPES",
    "GRAPHQL_PATH",
    "TENANT_INFO_PATH",
    "FakeCompass",
    "Fault",
    "GraphQLRequest",
    "RecordedRequest",
    "SequenceRecord",
]

EVENTS_PATH = "/gateway/api/compass/v1/events"
GRAPHQL_PATH = "/gateway/api/graphql"
TENANT_INFO_PATH = "/_edge/tenant_info"
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
GRAPHQL_FIELDS = ("eventSource", "component", "createEventSource", "attachEventSource", "createMetricSource")
NESTED_FIELDS = ("metricSources",)  # fields of a component that ``fail_graphql`` can fail too
BUILTIN_METRICS = "ari:cloud:compass::metric-definition/builtin/"
# The built-in definitions Compass derives from events: id -> (name, the event type they come from).
DERIVED_DEFINITIONS = {
    BUILTIN_METRICS + "build-success-rate": ("Build success rate", "BUILD"),
    BUILTIN_METRICS + "build-time-avg-last-10": ("Build time", "BUILD"),
    BUILTIN_METRICS + "weekly-deployment-frequency-28d": ("Deployment frequency", "DEPLOYMENT"),
    BUILTIN_METRICS + "deployment-time-avg-last-25": ("Deployment time", "DEPLOYMENT"),
}
METRIC_PAGE = 10  # metricSources' default page size
SCHEMA_PATH = Path(__file__).resolve().parent / "compass_schema.json"
DEPLOYMENT_SCHEMA_PATH = Path(__file__).resolve().parent / "compass_deployment_schema.json"
SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
SHARED_SCHEMA_PATH = SHARED_REFERENCE / "compass-build-event.schema.json"
SHARED_DEPLOYMENT_SCHEMA_PATH = SHARED_REFERENCE / "compass-deployment-event.schema.json"
# the schemas each kind of event is checked against: the project's own, and the reference's when present
_SCHEMAS = {
    "build": (("project schema", SCHEMA_PATH), ("reference schema", SHARED_SCHEMA_PATH)),
    "deployment": (
        ("project deployment schema", DEPLOYMENT_SCHEMA_PATH),
        ("reference deployment schema", SHARED_DEPLOYMENT_SCHEMA_PATH),
    ),
}
_HEADERS_KEPT = ("Authorization", "Content-Type", "Accept", "User-Agent", "Content-Length")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T")


@dataclass(frozen=True)
class Fault:
    """A scripted answer for one request, consumed before normal handling.

    * ``Fault(status=503)`` / ``Fault(status=404, body={...})``: answer with that status (and body);
    * ``Fault(status=429, retry_after="2")``: also send a ``Retry-After`` header;
    * ``Fault(delay=5.0)``: sleep, then answer normally (or with ``status`` if given);
    * ``Fault(reset=True)``: close the connection without answering (after ``delay``).
    """

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    reset: bool = False
    body: dict[str, Any] | None = None


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when it was not JSON
    raw: str
    status: int | None = None  # None when the connection was reset
    fault: Fault | None = None


@dataclass(frozen=True)
class SequenceRecord:
    """Ordering facts of one accepted event."""

    external_event_source_id: str
    pipeline_id: str
    update_sequence_number: int
    state: str
    stored: bool  # False when Compass would drop it silently (stale updateSequenceNumber)


@dataclass
class GraphQLRequest:
    """One GraphQL request as the fake saw it (recorded apart from the events endpoint's requests)."""

    at: float  # time.monotonic() on arrival
    field: str | None  # the first field under ``compass`` (eventSource, ...); None if it does not parse
    operation: str | None  # the operation name in the query text, e.g. buildtailCreateEventSource
    variables: dict[str, Any]
    status: int
    authorized: bool
    answer: dict[str, Any] | None = None
    query: str | None = None
    operation_type: str | None = None  # "query" or "mutation"

    @property
    def mutation(self) -> bool:
        return self.operation_type == "mutation"


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    invalid: list[tuple[dict[str, Any] | str, str]] = field(default_factory=list)
    sequence: list[SequenceRecord] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: deque[Fault] = field(default_factory=deque)
    graphql_requests: list[GraphQLRequest] = field(default_factory=list)
    tenant_info_requests: int = 0
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> event source
    components: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {name, sources}
    next_source: int = 1
    metric_sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> metric source
    next_metric: int = 1
    graphql_failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> error


Validators = dict[str, list[tuple[str, Any]]]


def _load_validators() -> Validators:
    """Per kind of event (``build``, ``deployment``), the schemas its body is checked against."""
    validators: Validators = {}
    for kind, schemas in _SCHEMAS.items():
        for name, path in schemas:
            if path.exists():
                schema = json.loads(path.read_text(encoding="utf-8"))
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validators.setdefault(kind, []).append((name, cls(schema, format_checker=cls.FORMAT_CHECKER)))
    return validators


def event_kind(body: Any) -> str:
    """``build`` or ``deployment``: the one key of a body's ``event`` (``build`` when it has none)."""
    event = body.get("event") if isinstance(body, dict) else None
    return next(iter(event), "build") if isinstance(event, dict) and len(event) == 1 else "build"


def event_of(body: dict[str, Any]) -> dict[str, Any]:
    """The event a body carries: its build or its deployment."""
    return body["event"][event_kind(body)]  # type: ignore[no-any-return]


def properties_of(body: dict[str, Any]) -> dict[str, Any]:
    """``buildProperties`` or ``deploymentProperties``."""
    return event_of(body)[f"{event_kind(body)}Properties"]  # type: ignore[no-any-return]


def _check_dates(body: dict[str, Any]) -> str | None:
    """Calendar check the regex cannot do (2026-02-30 matches the pattern)."""
    build = body.get("event", {}).get(event_kind(body), {})
    props = build.get(f"{event_kind(body)}Properties", {})
    for key, value in (
        ("lastUpdated", build.get("lastUpdated")),
        ("startedAt", props.get("startedAt")),
        ("completedAt", props.get("completedAt")),
    ):
        if isinstance(value, str) and (m := _DATE_RE.match(value)):
            try:
                date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return f"{key}: {value!r} is not a valid RFC 3339 date-time"
    return None


def _schema_problem(validators: Validators, body: Any) -> str | None:
    kind = event_kind(body)
    if kind not in validators:
        return f"event: {kind!r} is not an event this fake knows (build or deployment)"
    for name, validator in validators[kind]:
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            return f"{name}: {where}: {err.message}"
    return _check_dates(body) if isinstance(body, dict) else "not a JSON object"


def validate_body(body: Any) -> str | None:
    """The first contract violation of a request body, or None: the same checks the fake server makes."""
    return _schema_problem(_load_validators(), body)


def _errors(kind: str, message: str) -> dict[str, Any]:
    return {"errors": [{"type": kind, "message": message}]}


def _mutation_error(message: str, status: int, kind: str) -> dict[str, Any]:
    """A ``MutationError``: its ``extensions`` is one object."""
    return {"message": message, "extensions": {"statusCode": status, "errorType": kind}}


def _query_error(message: str, status: int, kind: str) -> dict[str, Any]:
    """A ``QueryError`` in place of the object asked for: its ``extensions`` is a list."""
    return {
        "__typename": "QueryError",
        "message": message,
        "extensions": [{"statusCode": status, "errorType": kind}],
    }


def _metric_node(source: dict[str, Any]) -> dict[str, Any]:
    """A ``CompassMetricSource`` as the schema has it (the registry keeps the definition's id)."""
    definition = source["metricDefinitionId"]
    name = DERIVED_DEFINITIONS.get(definition, (None, None))[0]
    return {
        "id": source["id"],
        "externalMetricSourceId": source["externalMetricSourceId"],
        "metricDefinition": {"id": definition, "name": name},
        "title": name,
        "url": None,
    }


def _read_operation(query: object) -> tuple[OperationDefinitionNode | None, list[FieldNode]]:
    """The request's operation and the fields it selects under ``compass`` (None, [] if it does not parse)."""
    if not isinstance(query, str):
        return None, []
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return None, []
    operation = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
    if operation is None:
        return None, []
    fields = [
        inner
        for outer in operation.selection_set.selections
        if isinstance(outer, FieldNode) and outer.name.value == "compass" and outer.selection_set
        for inner in outer.selection_set.selections
        if isinstance(inner, FieldNode)
    ]
    return operation, fields


class _CompassApi:
    """Resolvers of the Compass fields the fake knows, over its registry (called with the lock held).

    The same methods serve execution against the real schema and the hand-made answers, so the two
    cannot drift apart. Each returns the fields buildtail's documents select, ``__typename`` naming
    the member of a union; a failure scripted with ``fail_graphql`` is raised as a field error."""

    def __init__(self, fake: FakeCompass) -> None:
        self._fake = fake

    def _scripted_failure(self, field_name: str) -> None:
        failure = self._fake._state.graphql_failures.get(field_name)
        if failure is not None:
            raise graphql.GraphQLError(failure["message"], extensions=failure["extensions"])

    def eventSource(
        self,
        _info: Any,
        cloudId: str,
        eventType: str,
        externalEventSourceId: str,
    ) -> dict[str, Any]:
        self._scripted_failure("eventSource")
        found = None
        if cloudId == self._fake.cloud_id:
            found = self._fake._lookup_source(str(externalEventSourceId), str(eventType))
        if found is None:
            return _query_error("not found", 404, "NOT_FOUND")
        return {"__typename": "EventSource", **found}

    def component(self, _info: Any, id: str) -> dict[str, Any]:
        self._scripted_failure("component")
        component = self._fake._state.components.get(str(id))
        if component is None:
            return _query_error("not found", 404, "NOT_FOUND")
        return {
            "__typename": "CompassComponent",
            "id": id,
            "name": component["name"],
            "eventSources": [dict(self._fake._state.sources[s]) for s in component["sources"]],
            "metricSources": lambda info, query=None: self.metricSources(info, str(id), query),
        }

    def metricSources(self, _info: Any, component_id: str, query: Any = None) -> dict[str, Any]:
        """A component's ``metricSources(query: {first, after})``: one page of the connection."""
        self._scripted_failure("metricSources")
        query = query if isinstance(query, dict) else {}
        first = METRIC_PAGE if query.get("first") is None else query["first"]
        after = query.get("after")
        found = [m for m in self._fake._state.metric_sources.values() if m["componentId"] == component_id]
        start = 0
        if after is not None:
            if not (isinstance(after, str) and after.startswith("cursor:") and after[7:].isdigit()):
                return _query_error(f"invalid cursor {after!r}", 400, "BAD_REQUEST")
            start = int(after[7:]) + 1
        if not isinstance(first, int) or first < 0:
            return _query_error(f"first must be a positive number, not {first!r}", 400, "BAD_REQUEST")
        page = list(enumerate(found))[start : start + first]
        cursors = [f"cursor:{i}" for i, _ in page]
        return {
            "__typename": "CompassComponentMetricSourcesConnection",
            "nodes": [_metric_node(m) for _, m in page],
            "edges": [
                {"cursor": c, "node": _metric_node(m)} for c, (_, m) in zip(cursors, page, strict=True)
            ],
            "pageInfo": {
                "hasNextPage": start + len(page) < len(found),
                "hasPreviousPage": start > 0,
                "startCursor": cursors[0] if cursors else None,
                "endCursor": cursors[-1] if cursors else None,
            },
        }

    def createMetricSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("createMetricSource")
        input = input if isinstance(input, dict) else {}
        source, error = self._fake._create_metric_source(
            str(input.get("componentId")),
            str(input.get("metricDefinitionId")),
            input.get("externalMetricSourceId"),
            derived=input.get("derived") is True,
        )
        if source is None:
            return {"success": False, "createdMetricSource": None, "errors": [error]}
        return {"success": True, "createdMetricSource": _metric_node(source), "errors": None}

    def createEventSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("createEventSource")
        input = input if isinstance(input, dict) else {}  # by hand, nothing has checked it
        if input.get("cloudId") != self._fake.cloud_id:
            error = _mutation_error(f"cloudId {input.get('cloudId')!r} is not this site", 403, "FORBIDDEN")
            return {"success": False, "eventSource": None, "errors": [error]}
        source, error = self._fake._create_source(
            input.get("externalEventSourceId", ""), input.get("eventType", "")
        )
        if source is None:
            return {"success": False, "eventSource": None, "errors": [error]}
        return {"success": True, "eventSource": dict(source), "errors": None}

    def attachEventSource(self, _info: Any, input: Any) -> dict[str, Any]:
        self._scripted_failure("attachEventSource")
        input = input if isinstance(input, dict) else {}
        error = self._fake._attach_source(str(input.get("componentId")), str(input.get("eventSourceId")))
        if error is not None:
            return {"success": False, "errors": [error]}
        return {"success": True, "errors": None}


class FakeCompass:
    """Local fake of ``POST /gateway/api/compass/v1/events`` (and the GraphQL calls around it)."""

    def __init__(
        self,
        *,
        email: str = "ci-bot@example.com",
        token: str = "test-token",
        cloud_id: str = "cloud-123",
        require_event_source: bool = False,
        defer_validation: bool = False,
        graphql_schema: bool | None = None,
        account_limit_per_minute: int = 0,
    ) -> None:
        """``defer_validation``: bodies are accepted and checked later by ``validate_deferred`` (the
        latency benchmarks, where the schema check would otherwise delay the next request's arrival).
        ``account_limit_per_minute``: Compass's per-account limit, over a sliding 60 s window of the
        events accepted from every sender; beyond it an event is answered 429 with ``Retry-After``
        the seconds until a slot frees (0: no limit).
        ``graphql_schema``: execute GraphQL requests against Atlassian's schema (True: it must be
        there; None: when it is there) or answer them by hand (False)."""
        if graphql_schema and not compass_graphql.SDL_PATH.exists():
            raise ValueError(f"graphql_schema=True but {compass_graphql.SDL_PATH} does not exist")
        self.graphql_schema = compass_graphql.SDL_PATH.exists() if graphql_schema is None else graphql_schema
        self.email = email
        self.token = token
        self.cloud_id = cloud_id
        self.require_event_source = require_event_source
        self.account_limit_per_minute = account_limit_per_minute
        self._accepted_at: deque[float] = deque()  # the account's window (monotonic times)
        self.expected_authorization = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
        self._validators = _load_validators()
        self.defer_validation = defer_validation
        self._deferred: list[dict[str, Any]] = []
        self._state = _State()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeCompass:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeCompass already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-compass", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeCompass failed to start") from failure[0]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", TENANT_INFO_PATH, self._handle_tenant_info)
        app.router.add_route("*", GRAPHQL_PATH, self._handle_graphql)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # handlers still sleeping in a scripted delay: cancel them so the loop closes cleanly
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- public accessors (thread-safe copies) -------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/gateway/api"

    @property
    def url(self) -> str:
        """The full events URL (base_url + "/compass/v1/events")."""
        return f"http://127.0.0.1:{self._port}{EVENTS_PATH}"

    @property
    def site_url(self) -> str:
        """The site root, where ``/_edge/tenant_info`` answers."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def graphql_url(self) -> str:
        """The GraphQL endpoint (base_url + "/graphql")."""
        return f"http://127.0.0.1:{self._port}{GRAPHQL_PATH}"

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": self.expected_authorization}

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return list(self._state.events)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def invalid(self) -> list[tuple[dict[str, Any] | str, str]]:
        with self._state.lock:
            return list(self._state.invalid)

    @property
    def sequence(self) -> list[SequenceRecord]:
        """(externalEventSourceId, pipelineId, updateSequenceNumber, state) of each accepted event."""
        with self._state.lock:
            return list(self._state.sequence)

    @property
    def stored(self) -> dict[str, dict[str, Any]]:
        """What Compass would keep: the highest-updateSequenceNumber event per pipelineId."""
        with self._state.lock:
            return dict(self._state.stored)

    @property
    def dropped(self) -> list[SequenceRecord]:
        """Accepted events Compass would drop silently (updateSequenceNumber not increased)."""
        with self._state.lock:
            return [s for s in self._state.sequence if not s.stored]

    @property
    def graphql_requests(self) -> list[GraphQLRequest]:
        """Every GraphQL request, in arrival order (not part of ``requests``)."""
        with self._state.lock:
            return list(self._state.graphql_requests)

    def mutations(self) -> list[GraphQLRequest]:
        """The GraphQL requests that were mutations (createEventSource, attachEventSource,
        createMetricSource)."""
        return [r for r in self.graphql_requests if r.mutation]

    @property
    def tenant_info_requests(self) -> int:
        with self._state.lock:
            return self._state.tenant_info_requests

    # -- the event source / component registry ------------------------------------------------------

    def add_component(self, component_id: str, name: str | None = None) -> str:
        """Registers a component (no event sources attached); returns its id."""
        with self._state.lock:
            if component_id in self._state.components:
                raise ValueError(f"component {component_id!r} exists already")
            self._state.components[component_id] = {"name": name or component_id, "sources": []}
        return component_id

    def add_event_source(self, external_id: str, event_type: str = "BUILD") -> str:
        """Registers an event source (as if created earlier, e.g. by copying the CUSTOM example)."""
        with self._state.lock:
            source, problem = self._create_source(external_id, event_type)
        if source is None:
            raise ValueError(problem["message"])
        return source["id"]

    def attach(self, component_id: str, source_id: str) -> None:
        """Attaches an event source to a component, as the attachEventSource mutation would."""
        with self._state.lock:
            problem = self._attach_source(component_id, source_id)
        if problem is not None:
            raise ValueError(problem["message"])

    def event_sources(self) -> list[dict[str, str]]:
        """Every event source: ``{"id", "externalEventSourceId", "eventType"}``, in creation order."""
        with self._state.lock:
            return [dict(s) for s in self._state.sources.values()]

    def find_event_source(self, external_id: str, event_type: str = "BUILD") -> dict[str, str] | None:
        with self._state.lock:
            found = self._lookup_source(external_id, event_type)
            return None if found is None else dict(found)

    def components(self) -> dict[str, list[str]]:
        """Component id -> ids of the event sources attached to it."""
        with self._state.lock:
            return {cid: list(c["sources"]) for cid, c in self._state.components.items()}

    def add_metric_source(
        self,
        component_id: str,
        definition_id: str,
        external_id: str = "connected-in-the-ui",
        *,
        derived: bool = True,
    ) -> str:
        """Connects a metric to a component, as the UI or another integration would; returns its id."""
        with self._state.lock:
            source, problem = self._create_metric_source(component_id, definition_id, external_id, derived)
        if source is None:
            raise ValueError(problem["message"])
        return str(source["id"])

    def metric_sources(self, component_id: str) -> list[dict[str, Any]]:
        """The component's metric sources, in creation order: ``{"id", "componentId",
        "metricDefinitionId", "externalMetricSourceId", "derived"}``."""
        with self._state.lock:
            return [dict(m) for m in self._state.metric_sources.values() if m["componentId"] == component_id]

    def _create_metric_source(
        self, component_id: str, definition_id: str, external_id: object, derived: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Called with the lock held: (the new metric source, {}) or (None, a mutation error).

        Compass derives only its built-in definitions from events, and a component has one metric
        source per definition: a second one is refused, as the metric already shows there."""
        if component_id not in self._state.components:
            return None, _mutation_error(f"component {component_id!r} not found", 404, "NOT_FOUND")
        if not isinstance(external_id, str) or not external_id:
            return None, _mutation_error("externalMetricSourceId must not be empty", 400, "BAD_REQUEST")
        if derived and definition_id not in DERIVED_DEFINITIONS:
            return None, _mutation_error(
                f"metric definition {definition_id!r} cannot be derived from events", 400, "BAD_REQUEST"
            )
        for other in self._state.metric_sources.values():
            if (other["componentId"], other["metricDefinitionId"]) == (component_id, definition_id):
                return None, _mutation_error(
                    f"component {component_id!r} already has a metric source for {definition_id!r}",
                    409,
                    "ALREADY_EXISTS",
                )
        number = self._state.next_metric
        self._state.next_metric += 1
        metric_id = f"ari:cloud:compass:{self.cloud_id}:metric-source/{number:08d}"
        source: dict[str, Any] = {
            "id": metric_id,
            "componentId": component_id,
            "metricDefinitionId": definition_id,
            "externalMetricSourceId": external_id,
            "derived": derived,
        }
        self._state.metric_sources[metric_id] = source
        return source, {}

    def _lookup_source(self, external_id: str, event_type: str) -> dict[str, str] | None:
        for source in self._state.sources.values():
            if source["externalEventSourceId"] == external_id and source["eventType"] == event_type:
                return source
        return None

    def _create_source(
        self, external_id: str, event_type: str
    ) -> tuple[dict[str, str] | None, dict[str, Any]]:
        """Called with the lock held: (the new source, {}) or (None, a mutation error)."""
        if not isinstance(external_id, str) or not external_id:
            return None, _mutation_error("externalEventSourceId must not be empty", 400, "BAD_REQUEST")
        if event_type not in EVENT_TYPES:
            return None, _mutation_error(f"unknown eventType {event_type!r}", 400, "BAD_REQUEST")
        if self._lookup_source(external_id, event_type) is not None:
            return None, _mutation_error(
                f"an event source {external_id!r} of type {event_type} already exists", 409, "ALREADY_EXISTS"
            )
        number = self._state.next_source
        self._state.next_source += 1
        source = {
            "id": f"ari:cloud:compass:{self.cloud_id}:event-source/{number:08d}",
            "externalEventSourceId": external_id,
            "eventType": event_type,
        }
        self._state.sources[source["id"]] = source
        return source, {}

    def _attach_source(self, component_id: str, source_id: str) -> dict[str, Any] | None:
        """Called with the lock held: None, or a mutation error."""
        component = self._state.components.get(component_id)
        if component is None:
            return _mutation_error(f"component {component_id!r} not found", 404, "NOT_FOUND")
        if source_id not in self._state.sources:
            return _mutation_error(f"event source {source_id!r} not found", 404, "NOT_FOUND")
        if source_id in component["sources"]:
            return _mutation_error(
                f"event source {source_id!r} is already attached to {component_id!r}", 409, "ALREADY_EXISTS"
            )
        component["sources"].append(source_id)
        return None

    def fail_graphql(
        self, field_name: str, message: str, *, status: int = 403, error_type: str = "FORBIDDEN"
    ) -> None:
        """From now on ``field_name`` (one of ``GRAPHQL_FIELDS`` or ``NESTED_FIELDS``) answers null with
        a top-level error beside the rest of the data, as Compass answers a token that lacks a
        permission."""
        if field_name not in GRAPHQL_FIELDS + NESTED_FIELDS:
            raise ValueError(f"unknown field {field_name!r}; one of {GRAPHQL_FIELDS + NESTED_FIELDS}")
        with self._state.lock:
            self._state.graphql_failures[field_name] = {
                "message": message,
                "extensions": {"statusCode": status, "errorType": error_type},
            }

    def script(self, *responses: Fault) -> None:
        """Queue scripted responses, consumed one per request before normal handling.

        Any path counts except the GraphQL and tenant_info endpoints, which faults never touch.
        """
        with self._state.lock:
            self._state.script.extend(responses)

    def unscript(self) -> None:
        """Drop the scripted responses not consumed yet: from now on every request is answered normally."""
        with self._state.lock:
            self._state.script.clear()

    def clear(self) -> None:
        """Forget everything recorded (not the scripted faults)."""
        with self._state.lock:
            self._state.events.clear()
            self._state.requests.clear()
            self._state.invalid.clear()
            self._state.sequence.clear()
            self._state.stored.clear()
            self._state.graphql_requests.clear()
            self._state.tenant_info_requests = 0

    def builds(self) -> dict[str, list[dict[str, Any]]]:
        """Accepted build events grouped by pipelineId, in arrival order."""
        return self._grouped("build")

    def deployments(self) -> dict[str, list[dict[str, Any]]]:
        """Accepted deployment events grouped by pipelineId, in arrival order."""
        return self._grouped("deployment")

    def _grouped(self, kind: str) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for body in self.events:
            if event_kind(body) == kind:
                grouped.setdefault(properties_of(body)["pipeline"]["pipelineId"], []).append(body)
        return grouped

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll the accepted events until ``predicate(events)`` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events
            if predicate(events):
                return events
            if time.monotonic() >= deadline:
                raise AssertionError(f"FakeCompass: condition not met within {timeout}s\n{self.dump()}")
            time.sleep(0.02)

    async def wait_for_async(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """``wait_for`` for async tests (does not block the caller's event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events
            if predicate(events):
                return events
            if time.monotonic() >= deadline:
                raise AssertionError(f"FakeCompass: condition not met within {timeout}s\n{self.dump()}")
            await asyncio.sleep(0.02)

    def dump(self) -> str:
        """Human-readable account of every request, for assertion messages."""
        lines = []
        for r in self.requests:
            lines.append(f"  {r.method} {r.path} -> {r.status} fault={r.fault}")
            lines.append(
                "    " + (json.dumps(r.body, sort_keys=True) if r.body is not None else repr(r.raw[:500]))
            )
        lines.extend(f"  INVALID: {message}" for _, message in self.invalid)
        for g in self.graphql_requests:
            lines.append(f"  GRAPHQL {g.field or g.operation} {json.dumps(g.variables, sort_keys=True)}")
            lines.append(f"    -> {g.status} {json.dumps(g.answer, sort_keys=True)[:500]}")
        if not lines:
            return "no requests arrived"
        return f"{len(self.requests)} request(s), {len(self.events)} accepted:\n" + "\n".join(lines)

    # -- request handling ----------------------------------------------------------------------------

    def validate_deferred(self) -> int:
        """Checks the bodies accepted unchecked so far; the failures land in ``invalid``. Returns how
        many were checked."""
        with self._state.lock:
            pending, self._deferred = self._deferred, []
        for body in pending:
            problem = _schema_problem(self._validators, body)
            if problem is not None:
                with self._state.lock:
                    self._state.invalid.append((body, problem))
        return len(pending)

    def _validate(self, body: dict[str, Any]) -> str | None:
        if self.defer_validation:
            with self._state.lock:
                self._deferred.append(body)
        elif (problem := _schema_problem(self._validators, body)) is not None:
            return problem
        if body.get("cloudId") != self.cloud_id:
            return f"cloudId {body.get('cloudId')!r} does not match this site ({self.cloud_id!r})"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = (await request.read()).decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            at=time.monotonic(),
            method=request.method,
            path=request.path,
            headers={k: request.headers[k] for k in _HEADERS_KEPT if k in request.headers},
            body=parsed,
            raw=raw,
        )
        with self._state.lock:
            self._state.requests.append(record)
            fault = self._state.script.popleft() if self._state.script else None
        record.fault = fault

        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                record.status = None
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # nothing is written on an aborted connection
            if fault.status is not None:
                record.status = fault.status
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                if fault.body is not None:
                    return web.json_response(fault.body, status=fault.status, headers=headers)
                return web.Response(status=fault.status, headers=headers)

        status, answer, headers = self._decide(request, raw, parsed)
        record.status = status
        if answer is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(answer, status=status, headers=headers)

    def _decide(
        self, request: web.Request, raw: str, parsed: Any
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        if request.method != "POST" or request.path != EVENTS_PATH:
            return 404, _errors("NOT_FOUND", f"no route for {request.method} {request.path}"), {}
        if request.headers.get("Authorization") != self.expected_authorization:
            return 401, {"code": 401, "message": "Unauthorized; scope does not match"}, {}
        if (wait := self._account_wait()) is not None:
            answer = _errors("RATE_LIMITED", f"rate limit exceeded; try again in {wait}s")
            return 429, answer, {"Retry-After": str(wait)}
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            message = f"Content-Type must be application/json, got {content_type!r}"
            with self._state.lock:
                self._state.invalid.append((parsed if isinstance(parsed, dict) else raw, message))
            return 415, _errors("UNSUPPORTED_MEDIA_TYPE", message), {}
        if not isinstance(parsed, dict):
            message = "request body is not a JSON object"
            with self._state.lock:
                self._state.invalid.append((raw, message))
            return 400, _errors("FORMAT_INVALID", message), {}
        problem = self._validate(parsed)
        if problem is not None:
            with self._state.lock:
                self._state.invalid.append((parsed, problem))
            return 400, _errors("FORMAT_INVALID", problem), {}

        build = event_of(parsed)
        kind = event_kind(parsed).upper()
        pid = properties_of(parsed)["pipeline"]["pipelineId"]
        usn = int(build["updateSequenceNumber"])
        with self._state.lock:
            if (
                self.require_event_source
                and not parsed.get("componentId")
                and self._lookup_source(build["externalEventSourceId"], kind) is None
            ):
                missing = _errors(
                    "CREATE_EVENT_SOURCE_NOT_FOUND",
                    f"no event source {build['externalEventSourceId']!r} of type {kind}: create it "
                    f"(createEventSource, eventType {kind}) and attach it to a component",
                )
                return 404, missing, {}
            self._state.events.append(parsed)
            previous = self._state.stored.get(pid)
            keep = previous is None or usn > int(event_of(previous)["updateSequenceNumber"])
            if keep:
                self._state.stored[pid] = parsed
            self._state.sequence.append(
                SequenceRecord(
                    external_event_source_id=build["externalEventSourceId"],
                    pipeline_id=pid,
                    update_sequence_number=usn,
                    state=properties_of(parsed)["state"],
                    stored=keep,
                )
            )
        if self.account_limit_per_minute:
            with self._state.lock:
                self._accepted_at.append(time.monotonic())
        return 202, None, {}

    def _account_wait(self) -> int | None:
        """Whole seconds until the account's window has a free slot, None while it has one."""
        if not self.account_limit_per_minute:
            return None
        with self._state.lock:
            now = time.monotonic()
            while self._accepted_at and self._accepted_at[0] <= now - 60:
                self._accepted_at.popleft()
            if len(self._accepted_at) < self.account_limit_per_minute:
                return None
            return max(1, math.ceil(self._accepted_at[0] + 60 - now))

    # -- tenant info and GraphQL -------------------------------------------------------------------

    async def _handle_tenant_info(self, request: web.Request) -> web.StreamResponse:
        with self._state.lock:
            self._state.tenant_info_requests += 1
        if request.method not in ("GET", "HEAD"):
            return web.json_response(_errors("METHOD_NOT_ALLOWED", "use GET"), status=405)
        return web.json_response({"cloudId": self.cloud_id})

    async def _handle_graphql(self, request: web.Request) -> web.StreamResponse:
        raw = (await request.read()).decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        query = parsed.get("query") if isinstance(parsed, dict) else None
        variables = parsed.get("variables") if isinstance(parsed, dict) else None
        if not isinstance(variables, dict):
            variables = {}
        operation, fields = _read_operation(query)
        authorized = request.headers.get("Authorization") == self.expected_authorization
        record = GraphQLRequest(
            at=time.monotonic(),
            field=fields[0].name.value if fields else None,
            operation=operation.name.value if operation is not None and operation.name else None,
            variables=variables,
            status=0,
            authorized=authorized,
            query=query if isinstance(query, str) else None,
            operation_type=operation.operation.value if operation is not None else None,
        )
        with self._state.lock:
            self._state.graphql_requests.append(record)
        status, answer = await self._graphql(request, query, variables, fields, authorized)
        record.status, record.answer = status, answer
        return web.json_response(answer, status=status)

    async def _graphql(
        self,
        request: web.Request,
        query: object,
        variables: dict[str, Any],
        fields: list[FieldNode],
        authorized: bool,
    ) -> tuple[int, dict[str, Any]]:
        if request.method != "POST":
            return 405, {"errors": [{"message": f"{request.method} is not supported; use POST"}]}
        if not authorized:
            return 401, {"code": 401, "message": "Unauthorized"}
        if "compass-beta" not in request.headers.get("X-ExperimentalApi", ""):
            return 200, {
                "data": None,
                "errors": [
                    {
                        "message": "this field is in beta: send the header X-ExperimentalApi: compass-beta",
                        "extensions": {"statusCode": 400, "errorType": "BETA_API_NOT_OPTED_IN"},
                    }
                ],
            }
        if not isinstance(query, str):
            return 400, {"errors": [{"message": "the body must be JSON with a query string"}]}
        schema = await asyncio.to_thread(compass_graphql.schema) if self.graphql_schema else None
        api = _CompassApi(self)
        with self._state.lock:
            if schema is not None:
                return 200, compass_graphql.execute_request(schema, query, variables, {"compass": api})
            return 200, _answer_by_hand(api, query, fields, variables)


def _answer_by_hand(
    api: _CompassApi, query: str, fields: list[FieldNode], variables: dict[str, Any]
) -> dict[str, Any]:
    """The answer without the schema: the same resolvers, arguments read from the document."""
    if not fields:
        try:
            graphql.parse(query)
        except graphql.GraphQLError as exc:
            return {"errors": [exc.formatted]}
        return {"errors": [{"message": "the query selects no field under compass"}]}
    errors: list[dict[str, Any]] = []
    for node in fields:
        if node.name.value not in GRAPHQL_FIELDS:
            message = f"Cannot query field {node.name.value!r} (this fake knows {GRAPHQL_FIELDS})"
            return {"errors": [{"message": message}]}
    root = {name: getattr(api, name) for name in GRAPHQL_FIELDS}
    try:
        data = _project(root, fields, variables, ["compass"], errors)
    except TypeError as exc:
        return {"errors": [{"message": f"wrong arguments: {exc}"}]}
    return {"data": {"compass": data}, **({"errors": errors} if errors else {})}


def _selected(selections: SelectionSetNode | None, typename: object) -> list[FieldNode]:
    """The fields selected on an object of this ``__typename``: its own, and those of the inline
    fragments on its type (all of them when the object does not say its type)."""
    out: list[FieldNode] = []
    for selection in selections.selections if selections is not None else ():
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition.name.value if selection.type_condition else None
            if condition is None or typename is None or condition == typename:
                out.extend(_selected(selection.selection_set, typename))
    return out


def _project(
    value: dict[str, Any],
    fields: list[FieldNode],
    variables: dict[str, Any],
    path: list[str | int],
    errors: list[Any],
) -> dict[str, Any]:
    """What a GraphQL server answers over the resolvers' values: the selected fields only (under
    their aliases), a callable field called with its arguments, and a field error (a scripted
    failure) as null beside a top-level error with the field's path."""
    out: dict[str, Any] = {}
    for node in fields:
        key = (node.alias or node.name).value
        item = value.get(node.name.value)
        if callable(item):
            arguments = {
                a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()
            }
            try:
                item = item(None, **arguments)
            except graphql.GraphQLError as exc:
                error = graphql.GraphQLError(
                    exc.message, nodes=[node], path=[*path, key], extensions=exc.extensions
                )
                errors.append(dict(error.formatted))
                item = None
        out[key] = _project_value(item, node.selection_set, variables, [*path, key], errors)
    return out


def _project_value(
    value: Any,
    selections: SelectionSetNode | None,
    variables: dict[str, Any],
    path: list[str | int],
    errors: list[Any],
) -> Any:
    if selections is None:
        return value
    if isinstance(value, list):
        return [_project_value(v, selections, variables, [*path, i], errors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _project(value, _selected(selections, value.get("__typename")), variables, path, errors)
    return value
