"""Compass's request body for one queued update: a build event, or a deployment event.

Rendered when the event is sent, from the update the store keeps for every sink (``events.Update``)
and the settings of the moment: the display texts and their 255-character cap, the event source,
the component, a deployment's number and environment. An event queued by a release before the
update was kept carries the body that release rendered; it is sent as it is (``body``).
"""

from __future__ import annotations

from typing import Any

from daemon.config import Settings
from daemon.config.deployments import Environment
from daemon.events import RunFacts, Update, environment, format_duration, iso_ms

__all__ = ["MAX_TEXT", "build_event", "event_payload"]

MAX_TEXT = 255


def event_payload(body: dict[str, Any]) -> dict[str, Any]:
    """The event in a request body: its ``build`` or its ``deployment`` (a body carries exactly one)."""
    event: dict[str, Any] = next(iter(body["event"].values()))
    return event


def _sequence_number(facts: RunFacts) -> int:
    """A deployment's own number: the build number, or a number in the run id (GoCD's ``13.1`` is
    13), else the start in seconds, which orders the deployments of one pipeline the same way."""
    if isinstance(facts.number, int):
        return max(0, facts.number)
    head = str(facts.number).split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 19 else max(0, facts.start_ms) // 1000


def _description(facts: RunFacts, state: str, started_ms: int) -> str:
    if facts.running:
        parts = ["Running"]
    else:
        word = facts.result or state
        parts = [
            f"{word}{' (timed out)' if state == 'TIMED_OUT' else ''} in "
            f"{format_duration((facts.end_ms or started_ms) - started_ms)}"
        ]
    pull_request = _pull_request(facts)
    if pull_request:
        parts.append(pull_request)
    parts.extend(facts.causes[:2])
    if facts.commit:
        parts.append(f"commit {facts.commit[:12]}" + (f" on {facts.branch}" if facts.branch else ""))
    return _cap(" \u00b7 ".join(parts))


def _pull_request(facts: RunFacts) -> str | None:
    """A pull request's run says so, with the pull request's title and target when its branch
    source recorded them: ``PR-12: Fix the login page (into main)``."""
    head = facts.head
    if head is None or head.kind != "pull_request":
        return None
    text = head.name or f"PR-{head.pr_id}"
    if head.pr_title:
        text += f": {head.pr_title}"
    if head.pr_target:
        text += f" (into {head.pr_target})"
    return text


def _cap(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


def build_event(update: Update, seq: int, settings: Settings) -> dict[str, Any]:
    """The request body without ``cloudId`` (added when sent), ``seq`` its ``updateSequenceNumber``.

    A build event, or a deployment event for a run ``compass.deployments`` names: the same run
    identity, times and texts, with the deployment's own number and its environment.
    """
    facts, run = update.facts, update.run
    completed: str | None = None
    if run.terminal:
        end = facts.end_ms if facts.end_ms is not None else run.started_at_ms
        completed = iso_ms(max(end, run.started_at_ms))
    name = f"{facts.job} {facts.display_name}" if facts.display_name else f"{facts.job} #{facts.number}"
    common: dict[str, Any] = {
        "displayName": "",
        "lastUpdated": iso_ms(update.at_ms),
        "updateSequenceNumber": seq,
        "description": _description(facts, run.state, run.started_at_ms),
        "url": facts.run_url,
        "externalEventSourceId": settings.event_source_id(facts.job),
    }
    pipeline: dict[str, Any] = {"pipelineId": run.pipeline_id, "url": facts.job_url, "displayName": facts.job}
    if run.kind == "deployment":
        env = environment(facts, settings) or Environment(category="UNMAPPED", name="unknown")
        pipeline["url"] = facts.job_url or facts.run_url  # all three are required here
        event = {
            **common,
            "displayName": _cap(f"{name} to {env.name}"),
            "deploymentProperties": {
                "sequenceNumber": _sequence_number(facts),
                "state": run.state,
                "pipeline": pipeline,
                "environment": {
                    "category": env.category,
                    "displayName": env.name,
                    "environmentId": env.environment_id,
                },
                "startedAt": iso_ms(run.started_at_ms),
                "completedAt": completed,
            },
        }
        body: dict[str, Any] = {"event": {"deployment": event}}
    else:
        event = {
            **common,
            "displayName": _cap(name),
            "buildProperties": {
                "state": run.state,
                "pipeline": pipeline,
                "startedAt": iso_ms(run.started_at_ms),
                "completedAt": completed,
            },
        }
        body = {"event": {"build": event}}
    component = settings.component_for(facts.job)
    if component is not None:
        body["componentId"] = component
    return body
