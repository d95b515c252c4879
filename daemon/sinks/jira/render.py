"""Jira Software Cloud's items for one queued update: a build (submitBuilds) or a deployment
(submitDeployments), and the bulk request body that carries up to 100 of them.

Rendered from the update every sink shares (``events.Update``), the issue keys found for the run
(``parsers.issue_keys``), its test totals when known, and ``JiraRender``: what the Jira sink's
settings say about the rendering. The site and its cloudId are not here: they are in the request's
URL, which is the transport's.

The contract is Atlassian's OpenAPI for the two operations (the newer copy and the 2023 one): a
build is identified by ``(pipelineId, buildNumber)``, a deployment by ``(pipeline.id,
environment.id, deploymentSequenceNumber)``, and Jira keeps an update only if its
``updateSequenceNumber`` is greater than the stored one. That number is the outbox's sequence, the
same one Compass's body carries, so it only goes up. Keys go in ``issueKeys``: required by the 2023
text, deprecated but accepted by the newer one (which prefers ``associations``), so one body suits
both. An item without keys is not rendered (``NoIssueKeys``): Jira stores nothing without a known
key, and Atlassian's plugin skips the call too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.config.deployments import Environment
from daemon.events import RunFacts, Update, iso_ms
from parsers.issue_keys import MAX_ISSUE_KEYS
from parsers.result_file import TestSummary

__all__ = [
    "BUILD_STATES",
    "DEFAULT_ENVIRONMENT_TYPES",
    "DEPLOYMENT_STATES",
    "ENVIRONMENT_TYPES",
    "MAX_ITEMS",
    "JiraRender",
    "NoIssueKeys",
    "build_item",
    "bulk_body",
    "deployment_item",
    "jira_state",
]

MAX_TEXT = 255  # displayName, description, label, ids
MAX_URL = 2000
MAX_ITEMS = 100  # builds or deployments per request
BUILD_STATES = ("pending", "in_progress", "successful", "failed", "cancelled", "unknown")
DEPLOYMENT_STATES = (*BUILD_STATES, "rolled_back")
ENVIRONMENT_TYPES = ("unmapped", "development", "testing", "staging", "production")
# buildtail's environment category (compass.deployments) -> Jira's environment type
DEFAULT_ENVIRONMENT_TYPES: Mapping[str, str] = {
    "PRODUCTION": "production",
    "STAGING": "staging",
    "TESTING": "testing",
    "DEVELOPMENT": "development",
    "UNMAPPED": "unmapped",
}

# buildtail's state (Compass's words) -> Jira's. A timed-out run did not succeed: failed, not
# cancelled (Jira's cancelled is a run someone stopped). ERROR is a failure of the CI itself.
_STATES = {
    "PENDING": "pending",
    "IN_PROGRESS": "in_progress",
    "SUCCESSFUL": "successful",
    "FAILED": "failed",
    "ERROR": "failed",
    "TIMED_OUT": "failed",
    "CANCELLED": "cancelled",
    "ROLLED_BACK": "rolled_back",
    "UNKNOWN": "unknown",
}


class NoIssueKeys(ValueError):
    """The run names no issue: Jira would store nothing, so nothing is sent."""


@dataclass(frozen=True, slots=True)
class JiraRender:
    """What the rendering takes from the Jira sink's settings.

    ``server_url``: the CI server's address, the link of a run that has none of its own (every item
    needs a ``url``). ``product``: ``providerMetadata.product``. ``instance``: this installation's
    id in every body's ``properties`` (with ``source: buildtail``), so that what one installation
    sent can be deleted by property. ``environment_types``: buildtail's environment category ->
    Jira's environment type."""

    server_url: str
    product: str = "buildtail"
    instance: str | None = None
    environment_types: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ENVIRONMENT_TYPES))

    def __post_init__(self) -> None:
        wrong = {k: v for k, v in self.environment_types.items() if v not in ENVIRONMENT_TYPES}
        if wrong:
            raise ValueError(f"environment types must be one of {', '.join(ENVIRONMENT_TYPES)}: {wrong}")


def jira_state(state: str, kind: str) -> str:
    """buildtail's state of a run -> Jira's: where a build's or deployment's Jira state is decided.

    A build has no ``rolled_back`` (it is ``failed``); anything not known is ``unknown``, which Jira
    accepts for both."""
    jira = _STATES.get(state.upper(), "unknown")
    if kind != "deployment" and jira == "rolled_back":
        return "failed"
    return jira


def _cap(text: str, limit: int = MAX_TEXT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _id(text: str) -> str:
    """An id Jira accepts (at most 255 characters): the text, or when longer its start and a hash
    that keeps two long names apart."""
    if len(text) <= MAX_TEXT:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: MAX_TEXT - 17]}~{digest}"


def pipeline_id(facts: RunFacts) -> str:
    """The job's id in Jira, the same for all its runs: its source and full name."""
    return _id(f"{facts.source}/{facts.job}")


def build_number(facts: RunFacts) -> int:
    """The run's position in its job: the build number, or a number in the run id (GoCD's ``13.1``
    is 13), else the start in seconds, which orders the runs of one job the same way."""
    if isinstance(facts.number, int):
        return max(0, facts.number)
    head = str(facts.number).split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 19 else max(0, facts.start_ms) // 1000


def _name(facts: RunFacts) -> str:
    return f"{facts.job} {facts.display_name}" if facts.display_name else f"{facts.job} #{facts.number}"


def _url(url: str | None, render: JiraRender) -> str:
    return (url or render.server_url)[:MAX_URL]


def _keys(keys: Sequence[str]) -> list[str]:
    if not keys:
        raise NoIssueKeys("no issue keys")
    if len(keys) > MAX_ISSUE_KEYS:
        raise ValueError(f"{len(keys)} issue keys, at most {MAX_ISSUE_KEYS}: cut them first")
    return list(keys)


def _test_info(tests: TestSummary) -> dict[str, int]:
    failed = tests.failures + tests.errors
    return {
        "totalNumber": tests.tests,
        "numberPassed": max(0, tests.tests - failed - tests.skipped),
        "numberFailed": failed,
        "numberSkipped": tests.skipped,
    }


def _references(facts: RunFacts, repository: str | None) -> list[dict[str, Any]]:
    """The commit and branch built, where the repository is known (Jira requires it with both); the
    branch's uri is an identifier (the repository and the branch), not a link."""
    if not repository:
        return []
    reference: dict[str, Any] = {}
    if facts.commit:
        reference["commit"] = {"id": facts.commit[:MAX_TEXT], "repositoryUri": repository[:MAX_URL]}
    if facts.branch:
        reference["ref"] = {"name": facts.branch[:MAX_TEXT], "uri": f"{repository}#{facts.branch}"[:MAX_URL]}
    return [reference] if reference else []


def build_item(
    update: Update,
    keys: Sequence[str],
    seq: int,
    render: JiraRender,
    *,
    tests: TestSummary | None = None,
    repository: str | None = None,
) -> dict[str, Any]:
    """One ``BuildData``: ``seq`` is its ``updateSequenceNumber``; ``testInfo`` only with totals,
    ``references`` only with the repository."""
    facts, run = update.facts, update.run
    item: dict[str, Any] = {
        "schemaVersion": "1.0",
        "pipelineId": pipeline_id(facts),
        "buildNumber": build_number(facts),
        "updateSequenceNumber": seq,
        "displayName": _cap(_name(facts)),
        "url": _url(facts.run_url, render),
        "state": jira_state(run.state, "build"),
        "lastUpdated": iso_ms(update.at_ms),
        "issueKeys": _keys(keys),
    }
    if facts.display_name:
        item["label"] = _cap(facts.display_name)
    if tests is not None:
        item["testInfo"] = _test_info(tests)
    if references := _references(facts, repository):
        item["references"] = references
    return item


def deployment_item(
    update: Update, keys: Sequence[str], seq: int, render: JiraRender, *, environment: Environment | None
) -> dict[str, Any]:
    """One ``DeploymentData``: the run's number is its ``deploymentSequenceNumber``, ``seq`` its
    ``updateSequenceNumber``; ``environment`` as ``compass.deployments`` names it (unmapped when
    not known)."""
    facts, run = update.facts, update.run
    env = environment or Environment(category="UNMAPPED", name="unknown")
    state = jira_state(run.state, "deployment")
    word = "running" if state == "in_progress" else state.replace("_", " ")
    item: dict[str, Any] = {
        "schemaVersion": "1.0",
        "deploymentSequenceNumber": build_number(facts),
        "updateSequenceNumber": seq,
        "issueKeys": _keys(keys),
        "displayName": _cap(f"{_name(facts)} to {env.name}"),
        "url": _url(facts.run_url, render),
        "description": _cap(f"{_name(facts)} to {env.name}: {word}"),
        "lastUpdated": iso_ms(update.at_ms),
        "state": state,
        "pipeline": {
            "id": pipeline_id(facts),
            "displayName": _cap(facts.job),
            "url": _url(facts.job_url or facts.run_url, render),
        },
        "environment": {
            "id": _id(env.environment_id),
            "displayName": _cap(env.name),
            "type": render.environment_types.get(env.category, "unmapped"),
        },
    }
    if facts.display_name:
        item["label"] = _cap(facts.display_name)
    return item


def bulk_body(kind: str, items: Sequence[dict[str, Any]], render: JiraRender) -> dict[str, Any]:
    """The request body for ``kind`` ``builds`` or ``deployments``: 1 to ``MAX_ITEMS`` items, the
    provider named, and this installation's properties."""
    if kind not in ("builds", "deployments"):
        raise ValueError(f"kind must be builds or deployments, not {kind!r}")
    if not 1 <= len(items) <= MAX_ITEMS:
        raise ValueError(f"a request carries 1 to {MAX_ITEMS} {kind}, not {len(items)}")
    properties = {"source": "buildtail"}
    if render.instance:
        properties["instance"] = render.instance[:MAX_TEXT]
    return {kind: list(items), "properties": properties, "providerMetadata": {"product": render.product}}
