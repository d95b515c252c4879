"""``FakeJira``: the token endpoint and the builds and deployments bulk endpoints, on 127.0.0.1.

The server runs in a thread with its own event loop so that sync and async tests alike can use it;
every accessor hands out a copy taken under the lock, so a test never races the handlers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from tools.fake_jira._validation import KINDS, check_answer, check_body

TOKEN_PATH = "/oauth/token"
TENANT_INFO_PATH = "/_edge/tenant_info"
# the on-premises form: https://api.atlassian.com/jira/{builds|deployments}/0.1/cloud/{cloudId}/bulk
BULK_PATH = "/jira/{kind}/0.1/cloud/{cloud_id}/bulk"


class AnswerShapeError(AssertionError):
    """The fake was about to give an answer whose shape the real API's schema does not allow."""


@dataclass(frozen=True)
class Interposed:
    """An answer given in the real one's place: a proxy's page, a login redirect, an outage."""

    status: int
    body: str = ""
    content_type: str | None = "text/html"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Submission:
    """One bulk request as the fake answered it."""

    kind: str  # builds or deployments
    body: Any
    status: int
    answer: Any


class FakeJira:
    """Local fake of Jira Software Cloud's builds and deployments APIs for on-premises clients."""

    def __init__(
        self,
        *,
        client_id: str = "client-1",
        client_secret: str = "secret-1",
        cloud_id: str = "cloud-123",
        token_ttl_s: float = 3600.0,
        known_projects: Collection[str] | None = None,
        limit_per_minute: int = 0,
        use_schema: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        report_expiry: bool = True,
        permissions: Collection[str] = KINDS,
    ) -> None:
        """``known_projects``: the site's projects; a key of another is unknown (None: every key is
        known). ``limit_per_minute``: bulk requests over a sliding minute, beyond which the answer is
        429 with ``Retry-After`` the seconds until a slot frees (0: no limit). ``use_schema``:
        validate by the shared reference schemas when present (False: the structural check).
        ``ssl_context``: serve HTTPS with it (a certificate for 127.0.0.1). ``report_expiry``:
        whether the token answer carries ``expires_in`` (Atlassian's plugin never read it).
        ``permissions``: the kinds the credentials may send; a bulk request for another one gets
        403 once its token is checked (an assumption: what Jira answers then is unverified)."""
        self.client_id, self.client_secret, self.cloud_id = client_id, client_secret, cloud_id
        self.token_ttl_s = token_ttl_s
        self.known_projects = None if known_projects is None else {p.upper() for p in known_projects}
        self.limit_per_minute = limit_per_minute
        self.use_schema = use_schema
        self.ssl_context = ssl_context
        self.report_expiry = report_expiry
        self.permissions = set(permissions)
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._token_requests: list[dict[str, str]] = []
        self._submissions: list[Submission] = []
        self._stored: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._window: deque[float] = deque()
        self._interposed: dict[str, deque[Interposed]] = {"token": deque(), "bulk": deque()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeJira:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FakeJira already started")
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
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-jira", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeJira failed to start") from failure[0]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = None

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_get(TENANT_INFO_PATH, self._tenant_info)
        app.router.add_post(BULK_PATH, self._bulk)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    # -- public accessors (thread-safe copies) -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where api.atlassian.com would be: the token URL and the bulk URLs hang off it."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def bulk_url(self, kind: str) -> str:
        return self.base_url + BULK_PATH.format(kind=kind, cloud_id=self.cloud_id)

    @property
    def submissions(self) -> list[Submission]:
        with self._lock:
            return list(self._submissions)

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """Each token request's fields (the secret replaced by ``***``)."""
        with self._lock:
            return list(self._token_requests)

    def stored(self, kind: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        """What Jira would keep of ``kind``: per identity, the item with the highest updateSequenceNumber."""
        with self._lock:
            return {k[1:]: v for k, v in self._stored.items() if k[0] == kind}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token handed out so far (for tests that check a token never leaks)."""
        with self._lock:
            return list(self._tokens)

    def interpose(
        self,
        status: int,
        body: str = "",
        *,
        content_type: str | None = "text/html",
        headers: dict[str, str] | None = None,
        times: int = 1,
        on: str = "bulk",
    ) -> None:
        """The next ``times`` requests to ``on`` (``bulk`` or ``token``) get this answer instead of
        the real one, unchecked and unrecorded: something in the way, or Jira having a bad day."""
        if on not in self._interposed:
            raise ValueError(f"on must be bulk or token, not {on!r}")
        answer = Interposed(status, body, content_type, tuple((headers or {}).items()))
        with self._lock:
            self._interposed[on].extend([answer] * times)

    def clear_interposed(self) -> None:
        """The answers interposed and not given yet are dropped: Jira is back."""
        with self._lock:
            for queue in self._interposed.values():
                queue.clear()

    def _interposed_answer(self, on: str) -> web.Response | None:
        with self._lock:
            answer = self._interposed[on].popleft() if self._interposed[on] else None
        if answer is None:
            return None
        response = web.Response(status=answer.status, body=answer.body.encode(), headers=dict(answer.headers))
        if answer.content_type is not None:
            response.headers["Content-Type"] = answer.content_type
        return response

    def expire_tokens(self) -> None:
        """Every token issued so far stops working now."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    # -- handlers -------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        """The client-credentials grant, as a form (Atlassian's 1.x plugin) or as JSON."""
        if (interposed := self._interposed_answer("token")) is not None:
            return interposed
        if request.content_type == "application/json":
            try:
                raw = await request.json()
            except ValueError:
                raw = None
            fields = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        else:
            fields = {k: str(v) for k, v in (await request.post()).items()}
        with self._lock:
            self._token_requests.append(
                {k: ("***" if k == "client_secret" else v) for k, v in fields.items()}
            )
        if fields.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if (fields.get("client_id"), fields.get("client_secret")) != (self.client_id, self.client_secret):
            return web.json_response(
                {"error": "access_denied", "error_description": "Unauthorized"}, status=401
            )
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_s
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.report_expiry:
            answer["expires_in"] = max(0, round(self.token_ttl_s))
        return web.json_response(answer)

    async def _tenant_info(self, request: web.Request) -> web.Response:
        return web.json_response({"cloudId": self.cloud_id})

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            expiry = self._tokens.get(token)
        return scheme == "Bearer" and expiry is not None and time.monotonic() < expiry

    def _over_limit(self) -> float | None:
        """Seconds until the sliding minute has a free slot, when it is full; else record a request."""
        if not self.limit_per_minute:
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= 60:
                self._window.popleft()
            if len(self._window) >= self.limit_per_minute:
                return 60 - (now - self._window[0])
            self._window.append(now)
        return None

    async def _bulk(self, request: web.Request) -> web.Response:
        kind, cloud_id = request.match_info["kind"], request.match_info["cloud_id"]
        if (interposed := self._interposed_answer("bulk")) is not None:
            return interposed
        if kind not in KINDS or cloud_id != self.cloud_id:
            return web.json_response([{"message": "Not Found"}], status=404)
        if not self._authorized(request):
            return web.Response(status=401)
        if kind not in self.permissions:
            return web.Response(status=403)
        if (wait := self._over_limit()) is not None:
            return web.Response(status=429, headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self._record(kind, None, 400, [{"message": "request body is not JSON"}])
        problems = check_body(kind, body, use_schema=self.use_schema)
        if problems.request:
            return self._record(kind, body, 400, [{"message": m} for m in problems.request])
        # a rejection names the item by its key, whose fields the schema requires: an item without
        # them cannot be answered item by item, so the request as a whole is refused (an assumption)
        keyless = [i for i, item in enumerate(body[kind]) if None in _key(kind, item).values()]
        if keyless:
            return self._record(kind, body, 400, [{"message": f"{kind}/{i}: no key"} for i in keyless])
        return self._record(kind, body, 202, self._outcome(kind, body[kind], problems.items))

    def _outcome(
        self, kind: str, items: list[dict[str, Any]], invalid: dict[int, list[str]]
    ) -> dict[str, Any]:
        """The 202 answer: each item accepted, or rejected for its own problems or for naming only
        unknown issues; the unknown keys named."""
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        unknown: dict[str, None] = {}
        for index, item in enumerate(items):
            key = _key(kind, item)
            errors = list(invalid.get(index, []))
            keys = [k for k in item.get("issueKeys", []) if isinstance(k, str)]
            missing = [k for k in keys if not self._known(k)]
            unknown.update(dict.fromkeys(missing))
            if not errors and keys and len(missing) == len(keys):
                errors.append("the issue keys given are not on this site: " + ", ".join(missing))
            if errors:
                rejected.append({"key": key, "errors": [{"message": e} for e in errors]})
                continue
            accepted.append(key)
            identity = (kind, *key.values())
            with self._lock:
                old = self._stored.get(identity)
                if old is None or item["updateSequenceNumber"] > old["updateSequenceNumber"]:
                    self._stored[identity] = item
        answer: dict[str, Any] = {f"accepted{kind.title()}": accepted, f"rejected{kind.title()}": rejected}
        if unknown:
            answer["unknownIssueKeys"] = list(unknown)
        return answer

    def _known(self, key: str) -> bool:
        return self.known_projects is None or key.rsplit("-", 1)[0].upper() in self.known_projects

    def _record(self, kind: str, body: Any, status: int, answer: Any) -> web.Response:
        """Keep and give an answer, after checking it has the shape the schemas give the real API's
        (when they are present): a wrong one raises, so the request fails with a 500 and the error
        is in the log, rather than a test passing against an answer Jira never gives."""
        if wrong := check_answer(kind, status, answer):
            raise AnswerShapeError(f"the fake's {status} answer to {kind} departs from the schema: {wrong}")
        with self._lock:
            self._submissions.append(Submission(kind, body, status, answer))
        return web.json_response(answer, status=status)


def _key(kind: str, item: Any) -> dict[str, Any]:
    """The identity Jira reports an item by."""
    item = item if isinstance(item, dict) else {}
    if kind == "builds":
        return {"pipelineId": item.get("pipelineId"), "buildNumber": item.get("buildNumber")}
    pipeline, environment = item.get("pipeline"), item.get("environment")
    return {
        "pipelineId": pipeline.get("id") if isinstance(pipeline, dict) else None,
        "environmentId": environment.get("id") if isinstance(environment, dict) else None,
        "deploymentSequenceNumber": item.get("deploymentSequenceNumber"),
    }
