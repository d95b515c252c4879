"""Where queued updates go: each destination is a sink, and the sinks are peers.

The outbox holds each run's update once (``daemon.store``), destination-neutral; every sink has its
own outbox rows for it. A sink is a subpackage here, registered in ``daemon.sinks.registry``, and
provides (``Sink``): its ``name`` (the outbox rows' ``sink``), ``render`` (the request body it sends
for one queued update, built at send time), a ``Transport`` (sending one body and reading the answer
into a ``SendResult``: accepted, retry, rejected, unauthorized, not_found, not_compass), its rate
budget, and what an event is called in its log lines. The runtime path (``daemon.delivery``: the
delivery loop, backoff, pause, dead letters, the lock) is the same for every sink.

Compass (``daemon.sinks.compass``) is the first sink.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

__all__ = ["AnswerFields", "Outcome", "SendResult", "StdoutTransport", "Transport"]

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


class Transport(Protocol):
    async def send(self, body: dict[str, Any]) -> SendResult: ...

    async def close(self) -> None: ...


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
