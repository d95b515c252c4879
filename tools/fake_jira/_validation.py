"""The contract check of a submitBuilds or submitDeployments body, apart from the server so that
tests can run it on a rendered body without starting one.

Jira validates each item on its own: a bad item is rejected (``rejectedBuilds``) while the request
still gets its 202, and only a request malformed as a whole is a 400. So the check answers in two
parts: the problems of the request, and per item index the problems of that item.

The schemas are the shared reference's (``../shared/reference/jira/`` next to the checkout; never
copied into the project). Without them a smaller structural check stands in: the required fields,
the enums, the key pattern and the counts, so a body that the real API would surely refuse is
refused here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]

SHARED_JIRA = Path(__file__).resolve().parents[3] / "shared" / "reference" / "jira"
SCHEMA_PATHS = {
    "builds": SHARED_JIRA / "submit-builds.schema.json",
    "deployments": SHARED_JIRA / "submit-deployments.schema.json",
}
KINDS = tuple(SCHEMA_PATHS)
MAX_ITEMS = 100
ISSUE_KEY = re.compile(r"^[A-Za-z0-9_]{1,255}-[0-9]{1,255}$")
_FORMATS = jsonschema.FormatChecker()


def _date_time(value: object) -> bool:
    """RFC 3339 with a zone (jsonschema checks this only with an optional package)."""
    if not isinstance(value, str):
        return True
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _uri(value: object) -> bool:
    if isinstance(value, str) and not (urlsplit(value).scheme and urlsplit(value).netloc):
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


_FORMATS.checks("date-time", raises=ValueError)(_date_time)
_FORMATS.checks("uri", raises=ValueError)(_uri)


@dataclass
class Problems:
    """What is wrong with a body: as a whole (``request``, a 400) and per item (rejected items)."""

    request: list[str] = field(default_factory=list)
    items: dict[int, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.request and not self.items


def schemas_present() -> bool:
    return all(p.is_file() for p in SCHEMA_PATHS.values())


def _schemas() -> dict[str, dict[str, Any]]:
    return {
        kind: json.loads(path.read_text(encoding="utf-8"))
        for kind, path in SCHEMA_PATHS.items()
        if path.is_file()
    }


_SCHEMAS = _schemas()


def _validators() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for kind, schema in _SCHEMAS.items():
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        found[kind] = cls(schema, format_checker=_FORMATS)
    return found


_VALIDATORS = _validators()


def _answer_validator(kind: str, accepted: bool) -> Any:
    """The schema's own shape of an answer: the 202 body, or the error messages of any other status."""
    name = f"Submit{kind.title()}Response" if accepted else "ErrorMessages"
    schema = {"$defs": _SCHEMAS[kind]["$defs"], "$ref": f"#/$defs/{name}"}
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)


_ANSWER_VALIDATORS = {(kind, ok): _answer_validator(kind, ok) for kind in _SCHEMAS for ok in (True, False)}


def check_answer(kind: str, status: int, answer: Any) -> list[str]:
    """Where an answer the fake gives with ``status`` departs from the schema's response shapes, so
    the fake cannot drift from what the real API answers. Nothing to say without the schemas."""
    validator = _ANSWER_VALIDATORS.get((kind, status == 202))
    if validator is None:
        return []
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(answer)'}: {error.message[:300]}"
        for error in validator.iter_errors(answer)
    ]


def check_body(kind: str, body: Any, *, use_schema: bool = True) -> Problems:
    """The problems of a ``kind`` (``builds`` or ``deployments``) request body, by the schema when
    present (and ``use_schema``), else by the structural check."""
    problems = Problems()
    validator = _VALIDATORS.get(kind) if use_schema else None
    if validator is None:
        _structural(kind, body, problems)
        return problems
    for error in validator.iter_errors(body):
        path = list(error.absolute_path)
        where = "/".join(str(p) for p in path) or "(body)"
        message = f"{where}: {error.message[:300]}"
        if len(path) >= 2 and path[0] == kind and isinstance(path[1], int):
            problems.items.setdefault(path[1], []).append(message)
        else:
            problems.request.append(message)
    return problems


# the fields every item must have, and the enums, as the OpenAPI gives them
_REQUIRED = {
    "builds": (
        "pipelineId",
        "buildNumber",
        "updateSequenceNumber",
        "displayName",
        "url",
        "state",
        "lastUpdated",
    ),
    "deployments": (
        "deploymentSequenceNumber",
        "updateSequenceNumber",
        "displayName",
        "url",
        "description",
        "lastUpdated",
        "state",
        "pipeline",
        "environment",
    ),
}
_STATES = {
    "builds": {"pending", "in_progress", "successful", "failed", "cancelled", "unknown"},
    "deployments": {"pending", "in_progress", "successful", "failed", "cancelled", "unknown", "rolled_back"},
}
_ENVIRONMENT_TYPES = {"unmapped", "development", "testing", "staging", "production"}


def _structural(kind: str, body: Any, problems: Problems) -> None:
    items = body.get(kind) if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        problems.request.append(f"{kind}: 1 to {MAX_ITEMS} items required")
        return
    props = body.get("properties", {})
    if not isinstance(props, dict) or len(props) > 5 or any(k.startswith("_") or ":" in k for k in props):
        problems.request.append("properties: at most 5, keys without ':' and not starting with '_'")
    for index, item in enumerate(items):
        wrong = _item_problems(kind, item)
        if wrong:
            problems.items[index] = wrong


def _item_problems(kind: str, item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["not an object"]
    wrong = [f"{name}: required" for name in _REQUIRED[kind] if name not in item]
    if "state" in item and item["state"] not in _STATES[kind]:
        wrong.append(f"state: {item['state']!r} is not one of {sorted(_STATES[kind])}")
    keys = item.get("issueKeys")
    if keys is None and (kind == "deployments" and "associations" not in item):
        wrong.append("issueKeys or associations: required")
    if keys is not None and (
        not isinstance(keys, list)
        or not 1 <= len(keys) <= 100
        or not all(isinstance(k, str) and ISSUE_KEY.match(k) for k in keys)
    ):
        wrong.append("issueKeys: 1 to 100 keys like ABC-123")
    for name in ("updateSequenceNumber", "buildNumber", "deploymentSequenceNumber"):
        if name in item and (not isinstance(item[name], int) or isinstance(item[name], bool)):
            wrong.append(f"{name}: an integer")
    env = item.get("environment")
    if kind == "deployments" and isinstance(env, dict) and env.get("type") not in _ENVIRONMENT_TYPES:
        wrong.append(f"environment.type: one of {sorted(_ENVIRONMENT_TYPES)}")
    return wrong
