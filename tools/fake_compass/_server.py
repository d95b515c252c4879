"""``FakeCompass`` itself: the one object a test holds, which runs the app and reads back what it saw.

The server runs in a thread with its own event loop so that sync and async tests alike can use it,
and every accessor hands out a copy taken under the lock, so a test never races the handlers. The
endpoints, the registry and the checks live in their own modules and are combined here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from tools.fake_compass import compass_graphql
from tools.fake_compass._events_endpoint import EVENTS_PATH, _errors, _EventsEndpoint
from tools.fake_compass._graphql_endpoint import GRAPHQL_PATH, _GraphQLEndpoint
from tools.fake_compass._state import GraphQLRequest, RecordedRequest, SequenceRecord, _State
from tools.fake_compass._validation import _load_validators, event_kind, properties_of

TENANT_INFO_PATH = "/_edge/tenant_info"


class FakeCompass(_EventsEndpoint, _GraphQLEndpoint):
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
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``defer_validation``: bodies are accepted and checked later by ``validate_deferred`` (the
        latency benchmarks, where the schema check would otherwise delay the next request's arrival).
        ``account_limit_per_minute``: Compass's per-account limit, over a sliding 60 s window of the
        events accepted from every sender; beyond it an event is answered 429 with ``Retry-After``
        the seconds until a slot frees (0: no limit).
        ``graphql_schema``: execute GraphQL requests against Atlassian's schema (True: it must be
        there; None: when it is there) or answer them by hand (False).
        ``ssl_context``: serve HTTPS with it (its URLs then start with https://127.0.0.1)."""
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
        self._ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"

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
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
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
        return f"{self.scheme}://127.0.0.1:{self._port}/gateway/api"

    @property
    def url(self) -> str:
        """The full events URL (base_url + "/compass/v1/events")."""
        return f"{self.scheme}://127.0.0.1:{self._port}{EVENTS_PATH}"

    @property
    def site_url(self) -> str:
        """The site root, where ``/_edge/tenant_info`` answers."""
        return f"{self.scheme}://127.0.0.1:{self._port}"

    @property
    def graphql_url(self) -> str:
        """The GraphQL endpoint (base_url + "/graphql")."""
        return f"{self.scheme}://127.0.0.1:{self._port}{GRAPHQL_PATH}"

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

    # -- recorded events: forgetting, grouping, waiting ---------------------------------------------

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

    # -- tenant info -------------------------------------------------------------------------------

    async def _handle_tenant_info(self, request: web.Request) -> web.StreamResponse:
        with self._state.lock:
            self._state.tenant_info_requests += 1
        if request.method not in ("GET", "HEAD"):
            return web.json_response(_errors("METHOD_NOT_ALLOWED", "use GET"), status=405)
        return web.json_response({"cloudId": self.cloud_id})
