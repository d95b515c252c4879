"""Where queued updates go: each destination is a sink, and the sinks are peers.

The store keeps each run's update once, destination-neutral (``events.Update``); every sink has its
own outbox rows for it. A sink is a subpackage here, registered in ``daemon.sinks.registry``, and
provides what ``Sink`` says: its ``name`` (its outbox rows' ``sink``), ``render`` (its request body
for one queued update, built when it is sent, from the update and its own settings and
credentials), a ``Transport`` (one body sent, the answer read into a ``SendResult``: accepted,
retry, rejected, unauthorized, not_found, not_compass), its own rate budget, and the words its log
lines and pauses use. The runtime path (``daemon.delivery``: the delivery loop, ordering, backoff,
pause, dead letters, the lock) is the same for every sink.

A sink may take several updates in one request (``batch_size`` > 1: Jira takes up to 100): the
loop then hands it the updates due (``send_many``) and settles each by the answer the sink read for
it, with the same rules as a single one. ``batch_window``: how long the first update waits for
others to share its request.

Compass (``daemon.sinks.compass``) is the first sink, Jira (``daemon.sinks.jira``) the second.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from daemon.config import Settings
from daemon.delivery.budget import TokenBucket
from daemon.store import OutboxItem, Store

__all__ = ["AnswerFields", "Outcome", "SendResult", "Sent", "Sink", "StdoutTransport", "Transport"]

# not_compass: something other than the destination answered (a proxy's block page, a captive
# portal, a redirect to a login page); the event stays queued, see daemon/sinks/compass/answers.py
Outcome = Literal["accepted", "retry", "rejected", "unauthorized", "not_found", "not_compass"]


class AnswerFields(Protocol):
    """What answered in the destination's place, as ``buildtail status`` shows it."""

    def fields(self) -> dict[str, str | int | None]: ...


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None
    detail: str
    retry_after: float | None = None
    answer: AnswerFields | None = None  # set for not_compass: what answered in the destination's place


@dataclass(frozen=True, slots=True)
class Sent:
    """One update of a batch after its request: what was sent for it (``body``, kept for a dead
    letter and the log) and its ``result``; None: left queued untouched (not sent this time, or
    superseded by a newer update of its run that is not yet settled)."""

    item: OutboxItem
    body: dict[str, Any] | None
    result: SendResult | None


class Transport(Protocol):
    async def send(self, body: dict[str, Any]) -> SendResult: ...

    async def close(self) -> None: ...


class Sink(Protocol):
    """One destination, as the delivery loop drives it."""

    name: str  # its outbox rows' ``sink``; never changes once released
    title: str  # the destination in log lines: "Compass"
    transport: Transport
    bucket: TokenBucket  # its own rate budget, its requests recorded under ``name``
    for_real: bool  # False: a dry run, bodies printed instead of sent
    batch_size: int  # updates per request; 1: ``render`` and ``transport.send``, one at a time
    batch_window: float  # seconds the first update waits for others to share its request

    async def send_many(self, items: list[OutboxItem]) -> list[Sent]:
        """A batch sink's request(s) for ``items`` (due, oldest first): one ``Sent`` per item."""
        ...

    def render(self, item: OutboxItem) -> dict[str, Any]:
        """The request body for one queued update (``item.update``, or an earlier release's
        rendered ``item.body``), with the sequence number ``item.seq``."""
        ...

    def describe(self, body: dict[str, Any], item: OutboxItem) -> str:
        """What the event is called in a log line."""
        ...

    def route(self, body: dict[str, Any]) -> tuple[str | None, str | None]:
        """Where ``body`` goes within the destination: (event source id, component id), each None
        where the destination has no such thing; kept with the answer (``buildtail explain``)."""
        ...

    def pause_reason(self, result: SendResult, body: dict[str, Any]) -> str:
        """Why delivery pauses on an ``unauthorized`` or ``not_found`` answer, and what to do."""
        ...

    async def create_missing(self, body: dict[str, Any]) -> bool:
        """A ``not_found`` answer: whether what was missing (Compass's event source) was just
        created, so the event is sent again at once. False when the sink cannot."""
        ...

    async def reconfigure(self, new: Settings, store: Store, *, dry_run: bool) -> None:
        """A reload: new settings, credentials or budget for the next request."""
        ...


class StdoutTransport:
    """``--dry-run``: each request body as one JSON line on stdout; nothing leaves the machine."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout

    async def send(self, body: dict[str, Any]) -> SendResult:
        self._out.write(json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n")
        self._out.flush()
        return SendResult("accepted", None, "")

    async def close(self) -> None:
        return None
