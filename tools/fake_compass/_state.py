"""The plain data every part of the fake shares, kept apart so the endpoints need not import each other.

The events endpoint, the GraphQL endpoint, the registry and the public accessors all read and write
one ``_State`` under its lock; the records they append and the faults a test scripts are defined here.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


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
