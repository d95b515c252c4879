"""The events endpoint the daemon posts to, as strict as Compass's gateway, and a record of what it saw.

Delivery is only proven against a gateway that refuses what Compass refuses (auth, content type,
schema, cloudId, the account's rate limit) and silently drops what Compass drops (a stale
updateSequenceNumber); the scripted faults and the recorded requests let tests see how buildtail
reacts to the rest. Every path not routed elsewhere lands here, so a wrong URL shows up as a 404.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from typing import Any

from aiohttp import web

from tools.fake_compass._registry import _Registry
from tools.fake_compass._state import Fault, RecordedRequest, SequenceRecord
from tools.fake_compass._validation import Validators, _schema_problem, event_kind, event_of, properties_of

EVENTS_PATH = "/gateway/api/compass/v1/events"
_HEADERS_KEPT = ("Authorization", "Content-Type", "Accept", "User-Agent", "Content-Length")


def _errors(kind: str, message: str) -> dict[str, Any]:
    return {"errors": [{"type": kind, "message": message}]}


class _EventsEndpoint(_Registry):
    """The events endpoint part of ``FakeCompass``: scripted faults, request handling and recording."""

    expected_authorization: str
    require_event_source: bool
    account_limit_per_minute: int
    defer_validation: bool
    _accepted_at: deque[float]
    _validators: Validators
    _deferred: list[dict[str, Any]]

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
