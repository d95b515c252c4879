"""A scripted transport in the manner of httpx's ``MockTransport``, through the service's
``transport=`` seam: a handler decides each answer, every body is kept, and every body is checked
against the same Compass schemas the fake Compass server checks, so a test in process cannot pass
with a request the real API would refuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.sinks import SendResult
from tools.fake_compass._validation import properties_of, validate_body

__all__ = ["ACCEPTED", "ScriptedTransport", "accept"]

ACCEPTED = SendResult("accepted", 202, "")

Handler = Callable[[dict[str, Any]], SendResult]


def accept(body: dict[str, Any]) -> SendResult:
    """Compass's answer to a valid event: 202, no body."""
    return ACCEPTED


class ScriptedTransport:
    """Answers with ``handler(body)``; ``bodies`` holds every body sent, answered or not.

    A body that breaks the contract is recorded in ``invalid`` and answered 400, the way Compass
    answers it; ``assert_valid`` fails a test that produced one."""

    def __init__(self, handler: Handler = accept) -> None:
        self.handler = handler
        self.bodies: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.invalid: list[tuple[dict[str, Any], str]] = []
        self.closed = False

    async def send(self, body: dict[str, Any]) -> SendResult:
        self.bodies.append(body)
        problem = validate_body(body)
        if problem is not None:
            self.invalid.append((body, problem))
            return SendResult("rejected", 400, problem)
        result = self.handler(body)
        if result.outcome == "accepted":
            self.accepted.append(body)
        return result

    async def close(self) -> None:
        self.closed = True

    def assert_valid(self) -> None:
        assert not self.invalid, f"bodies Compass would refuse: {[p for _, p in self.invalid]}"

    def states(self, pipeline_id: str) -> list[str]:
        """The states accepted for one pipelineId, in the order they were accepted."""
        return [
            properties_of(b)["state"]
            for b in self.accepted
            if properties_of(b).get("pipeline", {}).get("pipelineId") == pipeline_id
        ]

    def builds(self) -> dict[str, list[dict[str, Any]]]:
        """pipelineId -> the bodies accepted for it, in order (the fake Compass's ``builds()``)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for body in self.accepted:
            out.setdefault(str(properties_of(body)["pipeline"]["pipelineId"]), []).append(body)
        return out
