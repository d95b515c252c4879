"""The scripted transport checks what it is given: a body Compass would refuse is answered 400 and
fails the test that produced it, so in-process tests hold the daemon to the same contract as the
fake Compass server."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.sinks import SendResult
from tests.scripted import ScriptedTransport


def _body(state: str = "SUCCESSFUL", started: str = "2026-02-01T10:00:00Z") -> dict[str, Any]:
    return {
        "cloudId": "cloud",
        "event": {
            "build": {
                "updateSequenceNumber": 1,
                "displayName": "app #1",
                "description": "app #1 on ci.example.com",
                "url": "https://ci.example.com/job/app/1/",
                "lastUpdated": "2026-02-01T10:00:05Z",
                "externalEventSourceId": "ci.example.com",
                "buildProperties": {
                    "state": state,
                    "pipeline": {
                        "pipelineId": "app#1",
                        "url": "https://ci.example.com/job/app/",
                        "displayName": "app",
                    },
                    "startedAt": started,
                    "completedAt": "2026-02-01T10:00:05Z",
                },
            }
        },
    }


async def test_a_valid_body_gets_the_handlers_answer_and_is_kept() -> None:
    answers = iter([SendResult("retry", 503, "busy"), SendResult("accepted", 202, "")])
    transport = ScriptedTransport(lambda body: next(answers))
    assert (await transport.send(_body())).outcome == "retry"
    assert (await transport.send(_body())).outcome == "accepted"
    assert len(transport.bodies) == 2 and transport.states("app#1") == ["SUCCESSFUL"]
    transport.assert_valid()


async def test_a_body_compass_would_refuse_is_answered_400_and_fails_the_test() -> None:
    transport = ScriptedTransport()
    result = await transport.send(_body(started="2026-02-30T10:00:00Z"))
    assert (result.outcome, result.status) == ("rejected", 400)
    assert "startedAt" in result.detail
    assert (await transport.send(_body(state="GREEN"))).outcome == "rejected"
    with pytest.raises(AssertionError, match="bodies Compass would refuse"):
        transport.assert_valid()
